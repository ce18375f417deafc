# check_svg.cmake -- checks an SVG file written by an example: that it is
# well-formed XML (with xmllint --noout, when XMLLINT names it) and, always,
# its structure: it starts with "<?xml" or "<svg", ends its root element with
# "</svg>" and holds each expected text.
#
#   cmake -DFILE=<svg> [-DXMLLINT=<xmllint>] [-DTEXTS=<a>,<b>,...] -P check_svg.cmake
#
# TEXTS is a comma-separated list (not ';': add_test would split it), e.g. the
# block labels "W1 (12),b1 (4),W2 (20),b2 (5)" as hess_write_svg_heatmap
# writes them, "name (size)".
if(NOT DEFINED FILE)
    message(FATAL_ERROR "check_svg.cmake: FILE is not set")
endif()
if(NOT EXISTS "${FILE}")
    message(FATAL_ERROR "${FILE}: no such file")
endif()

if(XMLLINT)
    execute_process(COMMAND ${XMLLINT} --noout "${FILE}"
                    RESULT_VARIABLE status
                    ERROR_VARIABLE err)
    if(NOT status EQUAL 0)
        message(FATAL_ERROR "${FILE}: not well-formed XML (xmllint status ${status}):\n${err}")
    endif()
    message("${FILE}: well-formed XML (xmllint)")
else()
    message("${FILE}: xmllint not found; structural check only")
endif()

file(READ "${FILE}" svg)
string(REGEX MATCH "^[ \t\r\n]*<(\\?xml|svg)" opening "${svg}")
if(NOT opening)
    message(FATAL_ERROR "${FILE}: does not start with <?xml or <svg")
endif()
if(NOT svg MATCHES "</svg>[ \t\r\n]*$")
    message(FATAL_ERROR "${FILE}: does not end with </svg>")
endif()
if(DEFINED TEXTS)
    string(REPLACE "," ";" texts "${TEXTS}")
    foreach(text IN LISTS texts)
        string(FIND "${svg}" ">${text}<" at)
        if(at EQUAL -1)
            message(FATAL_ERROR "${FILE}: no element with the text '${text}'")
        endif()
    endforeach()
endif()
message("${FILE}: starts with ${opening}, ends with </svg>, has the texts ${TEXTS}")
