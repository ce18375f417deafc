# TestNoCmocka.cmake -- the ctest test `configure_without_cmocka`, run as
#   cmake -DSOURCE_DIR=... -DWORK_DIR=... -DGENERATOR=... -DC_COMPILER=... -P TestNoCmocka.cmake
# Configures scratch builds of SOURCE_DIR as on a machine without cmocka
# (PKG_CONFIG_LIBDIR points at a directory that does not exist, so pkg-config
# finds no package at all) and checks, each step fatal:
#   1. `cmake -S . -B build` succeeds, says in one line that the unit tests are
#      off and how to turn them on, and still registers the example checks;
#   2. the release preset (`cmake --preset release`) configures the same way,
#      so `cmake --workflow --preset release` needs no cmocka;
#   3. -DHESSIAN_BUILD_TESTS=ON fails, with a message that names cmocka and
#      how to install it.
# Only configure steps run (no build), so the test takes a few seconds.

cmake_minimum_required(VERSION 3.21)

foreach(_v IN ITEMS SOURCE_DIR WORK_DIR GENERATOR C_COMPILER)
    if(NOT DEFINED ${_v} OR "${${_v}}" STREQUAL "")
        message(FATAL_ERROR "TestNoCmocka.cmake: -D${_v}=... is required")
    endif()
endforeach()

set(ENV{PKG_CONFIG_LIBDIR} "${WORK_DIR}/no-such-dir")
set(ENV{PKG_CONFIG_PATH} "")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

# The one line that says the unit tests are off: it names cmocka, how to
# install it, and the option that makes it required.
set(off_line_re "-- libhessian: cmocka not found[^\n]*apt-get install[^\n]*libcmocka-dev"
                "[^\n]*-DHESSIAN_BUILD_TESTS=ON[^\n]*\n")
string(CONCAT off_line_re ${off_line_re})

# configure(<name> <expect: ok|fail> <out-var> <args...>): runs cmake in SOURCE_DIR.
function(configure name expect out)
    message(STATUS "---- ${name}")
    execute_process(COMMAND "${CMAKE_COMMAND}" ${ARGN}
                    WORKING_DIRECTORY "${SOURCE_DIR}"
                    RESULT_VARIABLE rc OUTPUT_VARIABLE text ERROR_VARIABLE text)
    if(expect STREQUAL "ok" AND NOT rc EQUAL 0)
        message(FATAL_ERROR "FAILED: ${name}: configure failed without cmocka (status ${rc}):\n${text}")
    elseif(expect STREQUAL "fail" AND rc EQUAL 0)
        message(FATAL_ERROR "FAILED: ${name}: configure succeeded, expected an error:\n${text}")
    endif()
    set(${out} "${text}" PARENT_SCOPE)
endfunction()

# check_auto(<name> <output> <build dir>): the one line, no warning, and the
# examples' checks but no cmocka test registered.
function(check_auto name text bdir)
    string(REPLACE "${WORK_DIR}" "<work>" text "${text}")   # its name holds "cmocka"
    string(REPLACE ";" "," text "${text}")                  # not a list separator
    string(REGEX MATCHALL "[^\n]*cmocka[^\n]*" lines "${text}")
    list(LENGTH lines n)
    if(NOT n EQUAL 1 OR NOT text MATCHES "${off_line_re}")
        message(FATAL_ERROR "FAILED: ${name}: expected exactly one line about cmocka, matching\n"
                            "  ${off_line_re}\ngot ${n}:\n${text}")
    endif()
    list(GET lines 0 line)
    message(STATUS "${name}: ${line}")
    if(text MATCHES "CMake (Warning|Error)")
        message(FATAL_ERROR "FAILED: ${name}: configure warned:\n${text}")
    endif()
    execute_process(COMMAND "${CMAKE_CTEST_COMMAND}" --test-dir "${bdir}" -N
                    RESULT_VARIABLE rc OUTPUT_VARIABLE tests ERROR_VARIABLE tests)
    if(NOT rc EQUAL 0 OR NOT tests MATCHES "Test +#[0-9]+: ann_mse_default\n")
        message(FATAL_ERROR "FAILED: ${name}: the example checks are not registered:\n${tests}")
    endif()
    if(tests MATCHES "Test +#[0-9]+: test_")
        message(FATAL_ERROR "FAILED: ${name}: cmocka tests registered without cmocka:\n${tests}")
    endif()
    if(NOT EXISTS "${bdir}/examples/CMakeFiles/ann_mse.dir")
        message(FATAL_ERROR "FAILED: ${name}: the examples are not configured")
    endif()
endfunction()

set(common -G "${GENERATOR}" "-DCMAKE_C_COMPILER=${C_COMPILER}" -DHESSIAN_BUILD_BENCH=OFF)

# ---- 1. the default configure -------------------------------------------------
configure("cmake -S . -B build (no cmocka)" ok text -S "${SOURCE_DIR}" -B "${WORK_DIR}/default" ${common})
check_auto("cmake -S . -B build" "${text}" "${WORK_DIR}/default")

# ---- 2. the release preset ----------------------------------------------------
configure("cmake --preset release (no cmocka)" ok text --preset release -B "${WORK_DIR}/release" ${common})
check_auto("cmake --preset release" "${text}" "${WORK_DIR}/release")

# ---- 3. tests asked for -------------------------------------------------------
configure("cmake -DHESSIAN_BUILD_TESTS=ON (no cmocka)" fail text
          -S "${SOURCE_DIR}" -B "${WORK_DIR}/on" ${common} -DHESSIAN_BUILD_TESTS=ON)
if(NOT text MATCHES "HESSIAN_BUILD_TESTS=ON.*cmocka" OR NOT text MATCHES "libcmocka-dev")
    message(FATAL_ERROR "FAILED: -DHESSIAN_BUILD_TESTS=ON: no clear message about cmocka:\n${text}")
endif()
string(REGEX MATCH "CMake Error[^\n]*\n[^\n]*\n[^\n]*" err "${text}")
message(STATUS "-DHESSIAN_BUILD_TESTS=ON fails: ${err}")

file(REMOVE_RECURSE "${WORK_DIR}")
message(STATUS "configure_without_cmocka: all checks passed")
