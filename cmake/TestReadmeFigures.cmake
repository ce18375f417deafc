# TestReadmeFigures.cmake -- the ctest test `readme_figures`, run as
#   cmake -DREADME=README.md -DANN_MSE=<ann_mse program> -DSOURCE_DIR=<repo> -P TestReadmeFigures.cmake
# The figures README.md prints for examples/ann_mse.c, reproduced by this
# build (CI runs it with the default kernels, with HESSIAN_BLAS=off and with
# HESSIAN_SIMD=OFF too).  Checks, each fatal:
#   1. the block after "Its real output" is, byte for byte, what `ann_mse`
#      prints;
#   2. the three `ann_mse --case` commands the README gives (the indented
#      lines that start with build/example/examples/ann_mse) cover the three
#      cases of tests/data, each passes, and every absolute deviation they
#      print is at most the bound of the sentence "no absolute deviation
#      exceeds <bound>".

cmake_minimum_required(VERSION 3.21)

foreach(_v IN ITEMS README ANN_MSE SOURCE_DIR)
    if(NOT DEFINED ${_v} OR "${${_v}}" STREQUAL "")
        message(FATAL_ERROR "TestReadmeFigures.cmake: -D${_v}=... is required")
    endif()
endforeach()
file(READ "${README}" readme)

# ---- 1. the example's output -------------------------------------------------
string(FIND "${readme}" "Its real output" pos)
if(pos EQUAL -1)
    message(FATAL_ERROR "FAILED: README.md has no \"Its real output\" block")
endif()
string(SUBSTRING "${readme}" ${pos} -1 rest)
string(FIND "${rest}" "\n```\n" open)
math(EXPR open "${open} + 5")
string(SUBSTRING "${rest}" ${open} -1 rest)
string(FIND "${rest}" "```\n" close)
string(SUBSTRING "${rest}" 0 ${close} shown)
execute_process(COMMAND "${ANN_MSE}" RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT err STREQUAL "")
    message(FATAL_ERROR "FAILED: ann_mse exited ${rc}:\n${err}")
endif()
if(NOT out STREQUAL shown)
    file(WRITE "${CMAKE_CURRENT_BINARY_DIR}/readme_figures_output.txt" "${out}")
    message(FATAL_ERROR "FAILED: README.md's \"real output\" is not what ann_mse prints; "
                        "its output is in ${CMAKE_CURRENT_BINARY_DIR}/readme_figures_output.txt")
endif()
message(STATUS "README's ann_mse output: as printed")

# ---- 2. the deviations of the --case runs -------------------------------------
if(NOT readme MATCHES "no absolute deviation[ \n]+exceeds[ \n]+([0-9.]+e-[0-9]+)")
    message(FATAL_ERROR "FAILED: README.md states no bound \"no absolute deviation exceeds <x>\"")
endif()
set(bound "${CMAKE_MATCH_1}")
string(REGEX MATCHALL "\n +build/example/examples/ann_mse [^\n]*" runs "${readme}")
set(cases "")
foreach(run IN LISTS runs)
    string(REGEX REPLACE "^\n +build/example/examples/ann_mse " "" run "${run}")
    if(NOT run MATCHES "--case tests/data/([a-z_]+)\\.ref")
        continue()
    endif()
    list(APPEND cases "${CMAKE_MATCH_1}")
    separate_arguments(args UNIX_COMMAND "${run}")
    execute_process(COMMAND "${ANN_MSE}" ${args} WORKING_DIRECTORY "${SOURCE_DIR}"
                    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
    if(NOT rc EQUAL 0 OR NOT out MATCHES "\nPASS")
        message(FATAL_ERROR "FAILED: ann_mse ${run}: exit ${rc}\n${out}${err}")
    endif()
    string(REGEX MATCHALL "\n  (loss|gradient|hdiag|hessian|hvp) +[0-9]+ +[0-9.e+-]+" rows "${out}")
    list(LENGTH rows n_rows)
    if(NOT n_rows EQUAL 5)
        message(FATAL_ERROR "FAILED: ann_mse ${run}: expected 5 deviation rows:\n${out}")
    endif()
    set(worst 0)
    set(worst_what "")
    foreach(row IN LISTS rows)
        string(REGEX MATCH "(loss|gradient|hdiag|hessian|hvp) +[0-9]+ +([0-9.e+-]+)" _ "${row}")
        set(what "${CMAKE_MATCH_1}")
        set(dev "${CMAKE_MATCH_2}")
        # compare as numbers: CMake's math() has no floats, so by mantissa and exponent
        foreach(x IN ITEMS dev bound)
            string(REGEX MATCH "^([0-9])\\.?([0-9]*)e([+-][0-9]+)$" _ "${${x}}")
            string(SUBSTRING "${CMAKE_MATCH_2}000" 0 3 frac)
            set(${x}_m "${CMAKE_MATCH_1}${frac}")
            string(REGEX REPLACE "^[+]" "" exp "${CMAKE_MATCH_3}")
            math(EXPR ${x}_e "${exp}")
            math(EXPR ${x}_m "${${x}_m}")   # strip leading zeros
        endforeach()
        set(above FALSE)
        if(NOT dev_m EQUAL 0)
            if(dev_e GREATER bound_e OR (dev_e EQUAL bound_e AND dev_m GREATER bound_m))
                set(above TRUE)
            endif()
        endif()
        if(above)
            message(FATAL_ERROR "FAILED: ann_mse ${run}: the ${what} deviates by ${dev}, above "
                                "the README's bound ${bound}:\n${out}")
        endif()
        string(APPEND worst_what " ${what} ${dev}")
    endforeach()
    message(STATUS "${run}:${worst_what}")
endforeach()
list(SORT cases)
if(NOT cases STREQUAL "mlp_tanh_mse_batch;seed_ann;seed_ann_sigmoid")
    message(FATAL_ERROR "FAILED: README.md's ann_mse --case commands cover '${cases}', "
                        "not the three cases of tests/data")
endif()
message(STATUS "readme_figures: every deviation is at most ${bound}")
