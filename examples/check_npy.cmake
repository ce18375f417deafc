# check_npy.cmake -- checks the header of a NumPy .npy file written by an
# example, byte by byte, without NumPy: the magic "\x93NUMPY", format version
# 1.0, a header that is a dict holding 'descr': '<f8', 'fortran_order': False
# and the expected 'shape', padded so that the data starts at a multiple of
# 64 bytes, and exactly the shape's float64 values after it.
#
#   cmake -DFILE=<npy> -DSHAPE=<d0>,<d1>,... -P check_npy.cmake
#
# SHAPE is comma-separated (add_test would split a ';' list), e.g. 41,41 for
# the header text 'shape': (41, 41).
if(NOT DEFINED FILE OR NOT DEFINED SHAPE)
    message(FATAL_ERROR "check_npy.cmake: FILE and SHAPE must be set")
endif()
if(NOT EXISTS "${FILE}")
    message(FATAL_ERROR "${FILE}: no such file")
endif()

# The first 10 bytes: magic (6), version (2), header length (2, little-endian).
file(READ "${FILE}" fixed LIMIT 10 HEX)
string(SUBSTRING "${fixed}" 0 12 magic)
string(SUBSTRING "${fixed}" 12 4 version)
if(NOT magic STREQUAL "934e554d5059")
    message(FATAL_ERROR "${FILE}: bad magic ${magic}, expected 934e554d5059 (\\x93NUMPY)")
endif()
if(NOT version STREQUAL "0100")
    message(FATAL_ERROR "${FILE}: format version ${version}, expected 0100 (1.0)")
endif()
string(SUBSTRING "${fixed}" 16 2 len_lo)
string(SUBSTRING "${fixed}" 18 2 len_hi)
math(EXPR header_len "0x${len_hi}${len_lo}")
math(EXPR data_start "10 + ${header_len}")
math(EXPR misalign "${data_start} % 64")
if(NOT misalign EQUAL 0)
    message(FATAL_ERROR "${FILE}: data starts at byte ${data_start}, not a multiple of 64")
endif()

# The header text itself (ASCII), ending with '\n'.
file(READ "${FILE}" header OFFSET 10 LIMIT ${header_len})
string(REPLACE "," ", " shape_text "${SHAPE}")
string(REPLACE "," ";" dims "${SHAPE}")
list(LENGTH dims rank)
if(rank EQUAL 1)
    set(shape_text "${shape_text},") # a 1-tuple: (5,)
endif()
foreach(want IN ITEMS "'descr': '<f8'" "'fortran_order': False" "'shape': (${shape_text})")
    string(FIND "${header}" "${want}" at)
    if(at EQUAL -1)
        message(FATAL_ERROR "${FILE}: the header has no ${want}: ${header}")
    endif()
endforeach()
if(NOT header MATCHES "^{.*}[ ]*\n$")
    message(FATAL_ERROR "${FILE}: the header is not a dict padded with spaces and ended by \\n")
endif()

# The data: exactly 8 bytes per element.
set(numel 1)
foreach(d IN LISTS dims)
    math(EXPR numel "${numel} * ${d}")
endforeach()
file(SIZE "${FILE}" size)
math(EXPR want_size "${data_start} + 8 * ${numel}")
if(NOT size EQUAL want_size)
    message(FATAL_ERROR "${FILE}: ${size} bytes, expected ${want_size} "
                        "(${data_start} of header, ${numel} float64 values)")
endif()
message("${FILE}: .npy 1.0, '<f8', shape (${shape_text}), ${size} bytes: ok")
