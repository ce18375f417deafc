# TestReadmeCommands.cmake -- the ctest test `readme_commands`, run as
#   cmake -DREADME=README.md -DCI_RUN=.ci/run -DWORK_DIR=... -P TestReadmeCommands.cmake
# The two commands of README.md's "Build and test" section (the indented
# lines: first the example, then the tests) are meant to be pasted as they
# are, as root on a fresh Debian 12 or as a user with sudo.  Checks, each fatal:
#   1. the section has exactly those two command lines, and .ci/run holds
#      each byte for byte (the lines after `readme_example() {` and
#      `readme_tests() {`), so CI runs what the README says;
#   2. each command, run by /bin/sh and by bash with PATH holding only stubs
#      (id, sudo, apt-get, cmake, cc, pkg-config; sudo, apt-get and cmake
#      log their calls), behaves right on every machine below: as root on a
#      fresh machine it runs `apt-get update`, then `apt-get install`, without
#      sudo, and only then cmake; as a user it goes through sudo; when
#      everything is installed it installs nothing; and when the update or
#      the install fails, or a user has no sudo, it exits non-zero without
#      running cmake.
# The stubs "install" a package by putting its command on PATH (cmake, gcc ->
# cc, pkg-config, libcmocka-dev -> cmocka for pkg-config); the cmake stub
# fails as CMake would without a compiler, or without cmocka for the dev preset.

cmake_minimum_required(VERSION 3.21)

foreach(_v IN ITEMS README CI_RUN WORK_DIR)
    if(NOT DEFINED ${_v} OR "${${_v}}" STREQUAL "")
        message(FATAL_ERROR "TestReadmeCommands.cmake: -D${_v}=... is required")
    endif()
endforeach()

# ---- 1. the commands, in README.md and in .ci/run --------------------------
# The texts are searched as strings, never split into CMake lists: the
# commands hold semicolons and brackets.

# line_after(<out> <text> <marker>): the line that follows the first line
# equal to <marker> in <text>, or "" when there is none.
function(line_after out text marker)
    string(FIND "\n${text}" "\n${marker}\n" pos)
    set(line "")
    if(pos GREATER -1)
        string(LENGTH "${marker}\n" len)
        math(EXPR pos "${pos} + ${len}")
        string(SUBSTRING "${text}" ${pos} -1 rest)
        string(FIND "${rest}" "\n" eol)
        string(SUBSTRING "${rest}" 0 ${eol} line)
    endif()
    set(${out} "${line}" PARENT_SCOPE)
endfunction()

file(READ "${README}" readme)
string(FIND "${readme}" "\n## Build and test\n" start)
if(start EQUAL -1)
    message(FATAL_ERROR "FAILED: README.md has no section \"## Build and test\"")
endif()
math(EXPR start "${start} + 1")
string(SUBSTRING "${readme}" ${start} -1 section)
string(FIND "${section}" "\n## " end)
string(SUBSTRING "${section}" 0 ${end} section)
set(n 0)
set(rest "${section}")
while(TRUE)
    string(FIND "${rest}" "\n    " pos)
    if(pos EQUAL -1)
        break()
    endif()
    math(EXPR pos "${pos} + 5")
    string(SUBSTRING "${rest}" ${pos} -1 rest)
    string(FIND "${rest}" "\n" eol)
    string(SUBSTRING "${rest}" 0 ${eol} cmd_${n})
    math(EXPR n "${n} + 1")
endwhile()
if(NOT n EQUAL 2)
    message(FATAL_ERROR "FAILED: README.md, section \"Build and test\": expected 2 indented "
                        "command lines (example, tests), found ${n}")
endif()
set(cmd_example "${cmd_0}")
set(cmd_tests "${cmd_1}")
message(STATUS "README example command: ${cmd_example}")
message(STATUS "README test command:    ${cmd_tests}")

file(READ "${CI_RUN}" ci)
foreach(which IN ITEMS example tests)
    line_after(ci_line "${ci}" "readme_${which}() {")
    if(NOT ci_line STREQUAL cmd_${which})
        message(FATAL_ERROR "FAILED: the ${which} command in ${CI_RUN} (the line after "
                            "`readme_${which}() {`) is not the README's:\n"
                            "  .ci/run: ${ci_line}\n  README:  ${cmd_${which}}")
    endif()
endforeach()
message(STATUS ".ci/run runs both commands exactly as README.md writes them")

# ---- 2. the commands against stubs -----------------------------------------
file(REMOVE_RECURSE "${WORK_DIR}")
set(pool "${WORK_DIR}/pool")    # commands that a package install puts on PATH
set(log "${WORK_DIR}/log")

# sudo, apt-get and cmake log "<name> <args> [uid N]"; every stub reads its state from the
# environment: STUB_BIN (the only PATH entry), STUB_LOG, STUB_UID,
# STUB_UPDATE_RC, STUB_INSTALL_RC.
set(hdr "#!/bin/sh\necho \"\${0##*/} $* [uid $STUB_UID]\" >>\"$STUB_LOG\"\n")
# id, cc and pkg-config are only asked, and do not log.
file(WRITE "${pool}/id" "#!/bin/sh\n"
     "if [ \"$1\" = -u ]; then echo \"$STUB_UID\"; else echo \"uid=$STUB_UID\"; fi\n")
file(WRITE "${pool}/sudo" "${hdr}" "STUB_UID=0 exec \"$@\"\n")
file(WRITE "${pool}/apt-get" "${hdr}" [=[
if [ "$STUB_UID" != 0 ]; then
    echo "E: Could not open lock file /var/lib/apt/lists/lock - open (13: Permission denied)" >&2
    exit 100
fi
case "$1" in
update) # fetches the package lists, which a fresh machine lacks
    [ "${STUB_UPDATE_RC:-0}" = 0 ] || exit "$STUB_UPDATE_RC"
    : >"$STUB_BIN/../lists" ;;
install)
    [ "${STUB_INSTALL_RC:-0}" = 0 ] || exit "$STUB_INSTALL_RC"
    [ -f "$STUB_BIN/../lists" ] || { echo "E: Unable to locate package $3" >&2; exit 100; }
    shift
    for p in "$@"; do
        case "$p" in
        cmake) /bin/cp "$STUB_POOL/cmake" "$STUB_BIN/" ;;
        gcc) /bin/cp "$STUB_POOL/cc" "$STUB_BIN/" ;;
        pkg-config) /bin/cp "$STUB_POOL/pkg-config" "$STUB_BIN/" ;;
        libcmocka-dev) : >"$STUB_BIN/../cmocka" ;;
        esac
    done ;;
esac
]=])
file(WRITE "${pool}/cc" "#!/bin/sh\n")
file(WRITE "${pool}/pkg-config" "#!/bin/sh\n"
     "[ \"$1 $2\" = \"--exists cmocka\" ] && [ -f \"$STUB_BIN/../cmocka\" ]\n")
file(WRITE "${pool}/cmake" "${hdr}" [=[
command -v cc >/dev/null || { echo "CMake Error: No CMAKE_C_COMPILER could be found." >&2; exit 1; }
case " $* " in
*" --preset dev "*)
    [ -f "$STUB_BIN/../cmocka" ] || { echo "CMake Error: cmocka not found" >&2; exit 1; } ;;
*" --build "*)
    /bin/mkdir -p build/example/examples
    printf '#!/bin/sh\necho "ann_mse [uid $STUB_UID]" >>"$STUB_LOG"\n' >build/example/examples/ann_mse
    /bin/chmod +x build/example/examples/ann_mse ;;
esac
]=])
file(GLOB stubs "${pool}/*")
file(CHMOD ${stubs} PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
                                WORLD_READ WORLD_EXECUTE)

find_program(BASH bash)
set(shells /bin/sh)
if(BASH)
    list(APPEND shells "${BASH}")
endif()

# machine(<name> <example|tests> <uid> <installed: none|cmake|tools|all> <sudo: yes|no>
#         <update rc> <install rc> <ok|fail> <log regex> [<regex the log must not match>])
# runs one command on one stub machine with each shell and checks the exit
# status and the log.
set(n_runs 0)
function(machine name which uid installed sudo update_rc install_rc expect log_re)
    set(_forbid "${ARGN}")
    foreach(shell IN LISTS shells)
        get_filename_component(_sh "${shell}" NAME)
        set(m "${WORK_DIR}/${name}-${which}-${_sh}")
        file(MAKE_DIRECTORY "${m}/bin" "${m}/src")
        foreach(tool IN ITEMS id apt-get)
            file(COPY "${pool}/${tool}" DESTINATION "${m}/bin")
        endforeach()
        file(CREATE_LINK /bin/sh "${m}/bin/sh" SYMBOLIC)
        if(sudo STREQUAL "yes")
            file(COPY "${pool}/sudo" DESTINATION "${m}/bin")
        endif()
        if(NOT installed STREQUAL "none")
            file(COPY "${pool}/cmake" DESTINATION "${m}/bin")
            file(WRITE "${m}/lists" "")
        endif()
        if(installed MATCHES "^(tools|all)$")
            file(COPY "${pool}/cc" "${pool}/pkg-config" DESTINATION "${m}/bin")
        endif()
        if(installed STREQUAL "all")
            file(WRITE "${m}/cmocka" "")
        endif()
        file(WRITE "${m}/log" "")
        execute_process(
            COMMAND "${CMAKE_COMMAND}" -E env --unset=LD_LIBRARY_PATH
                    "PATH=${m}/bin" "STUB_BIN=${m}/bin" "STUB_POOL=${pool}" "STUB_LOG=${m}/log"
                    "STUB_UID=${uid}" "STUB_UPDATE_RC=${update_rc}" "STUB_INSTALL_RC=${install_rc}"
                    "${shell}" -c "${cmd_${which}}"
            WORKING_DIRECTORY "${m}/src"
            RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
        file(READ "${m}/log" got)
        set(what "${which} command, ${name}, ${_sh}")
        if(expect STREQUAL "ok" AND NOT rc EQUAL 0)
            message(FATAL_ERROR "FAILED: ${what}: exit status ${rc}, expected 0\nlog:\n${got}output:\n${out}")
        elseif(expect STREQUAL "fail" AND rc EQUAL 0)
            message(FATAL_ERROR "FAILED: ${what}: exit status 0, expected a failure\nlog:\n${got}output:\n${out}")
        endif()
        if(NOT got MATCHES "^${log_re}$")
            message(FATAL_ERROR "FAILED: ${what}: the calls were\n${got}expected them to match\n"
                                "  ^${log_re}$\noutput:\n${out}")
        endif()
        if(NOT "${_forbid}" STREQUAL "" AND got MATCHES "${_forbid}")
            message(FATAL_ERROR "FAILED: ${what}: the calls were\n${got}which must not match ${_forbid}")
        endif()
        math(EXPR n_runs "${n_runs} + 1")
    endforeach()
    set(n_runs ${n_runs} PARENT_SCOPE)
endfunction()

# Log patterns.  A line is "<command> <args> [uid N]".
set(upd_root "apt-get update \\[uid 0\\]\n")
set(inst_root_ex "apt-get install -y [^\n]*cmake[^\n]*gcc[^\n]*\\[uid 0\\]\n")
set(inst_root_t "apt-get install -y [^\n]*cmake[^\n]*gcc[^\n]*libcmocka-dev[^\n]*\\[uid 0\\]\n")
set(build_ex "cmake -S \\. -B build/example [^\n]*\\[uid U\\]\ncmake --build build/example --target ann_mse \\[uid U\\]\nann_mse \\[uid U\\]\n")
set(build_t "cmake --workflow --preset dev \\[uid U\\]\n")
set(sudo_sh "sudo sh -c [^\n]*\\[uid 1000\\]\n")
string(REPLACE "U" "0" build_ex_root "${build_ex}")
string(REPLACE "U" "1000" build_ex_user "${build_ex}")
string(REPLACE "U" "0" build_t_root "${build_t}")
string(REPLACE "U" "1000" build_t_user "${build_t}")

foreach(which IN ITEMS example tests)
    set(inst "${inst_root_ex}")
    if(which STREQUAL "tests")
        set(inst "${inst_root_t}")
    endif()
    set(bld_root "${build_ex_root}")
    set(bld_user "${build_ex_user}")
    if(which STREQUAL "tests")
        set(bld_root "${build_t_root}")
        set(bld_user "${build_t_user}")
    endif()
    # fresh Debian 12 as root: no sudo, no package lists, no tools
    machine(fresh_root ${which} 0 none no 0 0 ok "${upd_root}${inst}${bld_root}" "sudo")
    machine(fresh_root_update_fails ${which} 0 none no 100 0 fail "${upd_root}")
    machine(fresh_root_install_fails ${which} 0 none no 0 100 fail "${upd_root}${inst}")
    # a user with sudo, and one without
    machine(fresh_user_sudo ${which} 1000 none yes 0 0 ok "${sudo_sh}${upd_root}${inst}${bld_user}")
    machine(fresh_user_no_sudo ${which} 1000 none no 0 0 fail "")
    # everything installed: nothing to install, no sudo needed
    machine(installed_user ${which} 1000 all no 0 0 ok "${bld_user}")
    # cmake there but no compiler: a failed install must still stop the
    # command before cmake runs
    machine(cmake_only_root ${which} 0 cmake no 0 0 ok "${upd_root}${inst}${bld_root}")
    machine(cmake_only_root_update_fails ${which} 0 cmake no 100 0 fail "${upd_root}")
    machine(cmake_only_root_install_fails ${which} 0 cmake no 0 100 fail "${upd_root}${inst}")
endforeach()
# tools but no cmocka: the test command installs it, the example needs none
machine(tools_no_cmocka_root tests 0 tools no 0 0 ok "${upd_root}${inst_root_t}${build_t_root}")
machine(tools_no_cmocka_root_install_fails tests 0 tools no 0 100 fail "${upd_root}${inst_root_t}")
machine(tools_no_cmocka_user example 1000 tools no 0 0 ok "${build_ex_user}")

file(REMOVE_RECURSE "${WORK_DIR}")
message(STATUS "readme_commands: ${n_runs} runs, all as expected")
