# check_run.cmake -- runs one example program and checks its exact exit status,
# which ctest alone cannot do (WILL_FAIL accepts any non-zero status and
# PASS_REGULAR_EXPRESSION ignores the status altogether).
#
#   cmake -DEXPECT_STATUS=<n> [-DEXPECT_OUTPUT=<regex>] -P check_run.cmake -- <program> <args...>
#
# EXPECT_OUTPUT, unless empty, must match standard output ("." matches a
# newline too).  A status of 2 (bad arguments or input) must come with exactly
# one line on standard error and nothing on standard output.  The arguments
# pass through a CMake list, so they must not contain ';'.
if(NOT DEFINED EXPECT_STATUS)
    message(FATAL_ERROR "check_run.cmake: EXPECT_STATUS is not set")
endif()

# Everything after "--" is the command to run.
set(command "")
set(seen_separator FALSE)
math(EXPR last "${CMAKE_ARGC} - 1")
foreach(i RANGE ${last})
    if(seen_separator)
        list(APPEND command "${CMAKE_ARGV${i}}")
    elseif(CMAKE_ARGV${i} STREQUAL "--")
        set(seen_separator TRUE)
    endif()
endforeach()
if(NOT command)
    message(FATAL_ERROR "check_run.cmake: no command after --")
endif()

execute_process(COMMAND ${command}
                RESULT_VARIABLE status
                OUTPUT_VARIABLE out
                ERROR_VARIABLE err)
message("${out}")
if(err)
    message("[stderr] ${err}")
endif()

if(NOT status STREQUAL "${EXPECT_STATUS}")
    message(FATAL_ERROR "exit status '${status}', expected ${EXPECT_STATUS}")
endif()
if(NOT "${EXPECT_OUTPUT}" STREQUAL "" AND NOT out MATCHES "${EXPECT_OUTPUT}")
    message(FATAL_ERROR "standard output does not match '${EXPECT_OUTPUT}'")
endif()
if(EXPECT_STATUS EQUAL 2)
    string(REGEX MATCHALL "\n" newlines "${err}")
    list(LENGTH newlines lines)
    if(NOT lines EQUAL 1 OR NOT err MATCHES "\n$" OR NOT out STREQUAL "")
        message(FATAL_ERROR "expected one line on stderr and nothing on stdout")
    endif()
endif()
