# CheckRefsClaimed.cmake -- ctest `refs_claimed`: every PyTorch reference case
# in tests/data/ops/ is named by one of the tests/test_refs_*.c files (each of
# which also checks that it covers the cases of its own ops), so a case file
# whose op belongs to no family cannot sit there unchecked.
#   cmake -DSOURCE_DIR=<repo> -P CheckRefsClaimed.cmake
file(GLOB _cases "${SOURCE_DIR}/tests/data/ops/*.ref")
file(GLOB _tests "${SOURCE_DIR}/tests/test_refs_*.c")
set(_all "")
foreach(_t IN LISTS _tests)
    file(READ "${_t}" _text)
    string(APPEND _all "${_text}\n")
endforeach()
set(_missing "")
list(LENGTH _cases _n)
foreach(_c IN LISTS _cases)
    get_filename_component(_name "${_c}" NAME_WE)
    string(REGEX MATCH "[^A-Za-z0-9_]${_name}[^A-Za-z0-9_]" _hit "${_all}")
    if(NOT _hit)
        list(APPEND _missing "${_name}")
    endif()
endforeach()
if(_missing)
    message(FATAL_ERROR "reference cases no tests/test_refs_*.c names: ${_missing}")
endif()
message(STATUS "all ${_n} reference cases are named by a tests/test_refs_*.c")
