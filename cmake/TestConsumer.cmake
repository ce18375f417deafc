# TestConsumer.cmake -- the ctest test `package_consumer`, run as
#   cmake -DHESSIAN_BUILD_DIR=... -DCONSUMER_SOURCE_DIR=... -DWORK_DIR=... -P TestConsumer.cmake
# (the arguments are set by the top-level CMakeLists.txt).  Steps, each fatal:
#   1. cmake --install the build tree into WORK_DIR/prefix; check the files;
#   2. the installed libhessian.so: SONAME from the major version, and every
#      exported (dynamic, defined) symbol is a public hess_* name;
#   3. examples/consumer configured with find_package(hessian 0.1 CONFIG),
#      built and run (shared and static library); the shared one's RUNPATH
#      names the installed library directory; the version file rejects the
#      next major version;
#   4. examples/consumer/main.c compiled with `pkg-config --cflags --libs
#      hessian` and run against the installed shared library: its Libs carry
#      -Wl,-rpath,${libdir} (PC_RPATH, unless the build's libdir is a system
#      directory), so it runs as it is.
# Every consumer program runs with LD_LIBRARY_PATH unset: installed where the
# README says, a program must find libhessian.so without it.
# In a HESSIAN_SANITIZE build the consumer gets the same -fsanitize flags,
# since the installed libraries need the sanitizer runtimes.

cmake_minimum_required(VERSION 3.21)

foreach(_v IN ITEMS HESSIAN_BUILD_DIR CONSUMER_SOURCE_DIR WORK_DIR LIBDIR INCLUDEDIR VERSION
                    SOVERSION C_COMPILER GENERATOR PC_RPATH)
    if(NOT DEFINED ${_v} OR "${${_v}}" STREQUAL "")
        message(FATAL_ERROR "TestConsumer.cmake: -D${_v}=... is required")
    endif()
endforeach()

# Runs a command with its output shown; any failure ends the test.
function(hess_run what)
    message(STATUS "---- ${what}")
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc COMMAND_ECHO STDOUT)
    if(NOT rc EQUAL 0)
        message(FATAL_ERROR "FAILED: ${what} (exit status: ${rc})")
    endif()
endfunction()

# Runs an installed consumer program with LD_LIBRARY_PATH unset.
function(hess_run_bare what exe)
    hess_run("${what} (LD_LIBRARY_PATH unset)" "${CMAKE_COMMAND}" -E env --unset=LD_LIBRARY_PATH "${exe}")
endfunction()

# Fails unless the ELF file's RUNPATH (or RPATH) names the directory dir.
function(hess_check_runpath exe dir)
    hess_capture(dyn "readelf -d ${exe}" "${READELF}" -d "${exe}")
    file(REAL_PATH "${dir}" want)
    set(found "")
    string(REGEX MATCHALL "\\((RUNPATH|RPATH)\\)[^\n]*\\[[^]\n]*\\]" entries "${dyn}")
    foreach(e IN LISTS entries)
        string(REGEX REPLACE ".*\\[([^]]*)\\]$" "\\1" paths "${e}")
        string(REPLACE ":" ";" paths "${paths}")
        foreach(p IN LISTS paths)
            if(EXISTS "${p}")
                file(REAL_PATH "${p}" p)
                if(p STREQUAL want)
                    set(found "${e}")
                endif()
            endif()
        endforeach()
    endforeach()
    if(NOT found)
        message(FATAL_ERROR "FAILED: ${exe} has no RUNPATH or RPATH naming ${dir}:\n${dyn}")
    endif()
    get_filename_component(name "${exe}" NAME)
    message(STATUS "${name}: ${found}")
endfunction()

# Runs a command and returns its standard output, stripped; failure is fatal.
function(hess_capture out what)
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE text
                    ERROR_VARIABLE err OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(NOT rc EQUAL 0)
        message(FATAL_ERROR "FAILED: ${what} (exit status: ${rc})\n${text}\n${err}")
    endif()
    set(${out} "${text}" PARENT_SCOPE)
endfunction()

set(prefix "${WORK_DIR}/prefix")
set(libdir "${prefix}/${LIBDIR}")
if(IS_ABSOLUTE "${LIBDIR}" OR IS_ABSOLUTE "${INCLUDEDIR}")
    message(FATAL_ERROR "TestConsumer.cmake needs relative install dirs (got ${LIBDIR}, ${INCLUDEDIR})")
endif()
set(config_args "")
set(build_type "${CONFIG}")
if(NOT "${CONFIG}" STREQUAL "")
    set(config_args --config "${CONFIG}")
else()
    set(build_type Release)
endif()

set(san_flags "")
if(NOT "${SANITIZE}" STREQUAL "")
    string(REPLACE ";" "," SANITIZE "${SANITIZE}")
    set(san_flags -fsanitize=${SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
    message(STATUS "Sanitizer build: the consumer is built with ${san_flags_str}")
endif()
string(REPLACE ";" " " san_flags_str "${san_flags}")

if(CMAKE_HOST_WIN32 OR CMAKE_HOST_APPLE)
    message(FATAL_ERROR "TestConsumer.cmake checks an ELF install layout; not written for this host")
endif()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
unset(ENV{LD_LIBRARY_PATH})   # for everything below, the consumers' ctest too

# ---- 1. install ------------------------------------------------------------
hess_run("install into ${prefix}"
         "${CMAKE_COMMAND}" --install "${HESSIAN_BUILD_DIR}" --prefix "${prefix}" ${config_args})
foreach(f IN ITEMS
        "${prefix}/${INCLUDEDIR}/hessian.h"
        "${libdir}/libhessian.a"
        "${libdir}/libhessian.so"
        "${libdir}/libhessian.so.${SOVERSION}"
        "${libdir}/libhessian.so.${VERSION}"
        "${libdir}/cmake/hessian/hessianConfig.cmake"
        "${libdir}/cmake/hessian/hessianConfigVersion.cmake"
        "${libdir}/cmake/hessian/hessianTargets.cmake"
        "${libdir}/pkgconfig/hessian.pc")
    if(NOT EXISTS "${f}")
        message(FATAL_ERROR "FAILED: not installed: ${f}")
    endif()
endforeach()
message(STATUS "installed files present")

# ---- 2. SONAME and exported symbols ---------------------------------------
find_program(READELF NAMES readelf)
find_program(NM NAMES nm)
if(NOT READELF OR NOT NM)
    message(FATAL_ERROR "FAILED: readelf and nm are needed to check libhessian.so")
endif()
hess_capture(dyn "readelf -d" "${READELF}" -d "${libdir}/libhessian.so.${VERSION}")
if(NOT dyn MATCHES "\\(SONAME\\)[^\n]*\\[libhessian\\.so\\.${SOVERSION}\\]")
    message(FATAL_ERROR "FAILED: SONAME of libhessian.so is not libhessian.so.${SOVERSION}:\n${dyn}")
endif()
message(STATUS "SONAME libhessian.so.${SOVERSION}")

hess_capture(syms "nm -D" "${NM}" -D --defined-only "${libdir}/libhessian.so.${VERSION}")
string(REPLACE "\n" ";" syms "${syms}")
set(n_public 0)
set(bad "")
foreach(line IN LISTS syms)
    if(line MATCHES "^[0-9A-Fa-f]* *[A-Za-z] +([^ ]+)$")
        set(name "${CMAKE_MATCH_1}")
        if(name MATCHES "^hess_[A-Za-z0-9]")
            math(EXPR n_public "${n_public} + 1")
        else()
            list(APPEND bad "${name}")
        endif()
    elseif(NOT line STREQUAL "")
        message(FATAL_ERROR "FAILED: cannot parse nm output line '${line}'")
    endif()
endforeach()
if(bad)
    list(JOIN bad "\n  " bad)
    message(FATAL_ERROR "FAILED: libhessian.so exports symbols that are not public hess_* names:\n  ${bad}")
endif()
if(n_public LESS 10)
    message(FATAL_ERROR "FAILED: libhessian.so exports only ${n_public} hess_* symbols")
endif()
message(STATUS "libhessian.so exports ${n_public} symbols, all public hess_* names")

# ---- 3. find_package consumer ---------------------------------------------
set(cbuild "${WORK_DIR}/consumer-cmake")
hess_run("configure examples/consumer with find_package"
         "${CMAKE_COMMAND}" -S "${CONSUMER_SOURCE_DIR}" -B "${cbuild}" -G "${GENERATOR}"
         "-DCMAKE_PREFIX_PATH=${prefix}"
         "-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF"
         "-DCMAKE_C_COMPILER=${C_COMPILER}"
         "-DCMAKE_BUILD_TYPE=${build_type}"
         "-DCMAKE_C_FLAGS=${san_flags_str}"
         "-DCMAKE_EXE_LINKER_FLAGS=${san_flags_str}")
hess_run("build examples/consumer" "${CMAKE_COMMAND}" --build "${cbuild}" ${config_args})
set(cdir "${cbuild}")
if(EXISTS "${cbuild}/${build_type}/consumer")   # multi-config generators
    set(cdir "${cbuild}/${build_type}")
endif()
hess_check_runpath("${cdir}/consumer" "${libdir}")
hess_run_bare("run the find_package consumer (shared library)" "${cdir}/consumer")
hess_run_bare("run the find_package consumer (static library)" "${cdir}/consumer_static")
hess_run("examples/consumer's own ctest (shared and static)"
         "${CMAKE_CTEST_COMMAND}" --test-dir "${cbuild}" -C "${build_type}"
         --output-on-failure --no-tests=error)

# SameMajorVersion: the next major version must not be found.
math(EXPR next_major "${SOVERSION} + 1")
file(WRITE "${WORK_DIR}/version-probe/CMakeLists.txt"
"cmake_minimum_required(VERSION 3.21)
project(hessian_version_probe LANGUAGES NONE)
find_package(hessian ${next_major}.0 CONFIG QUIET)
if(hessian_FOUND)
    message(FATAL_ERROR \"find_package(hessian ${next_major}.0) accepted version \${hessian_VERSION}\")
endif()
find_package(hessian ${VERSION} EXACT CONFIG REQUIRED)
")
hess_run("version file rejects ${next_major}.0 and accepts ${VERSION}"
         "${CMAKE_COMMAND}" -S "${WORK_DIR}/version-probe" -B "${WORK_DIR}/version-probe/build"
         "-DCMAKE_PREFIX_PATH=${prefix}" "-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF")

# ---- 4. pkg-config consumer ------------------------------------------------
find_program(PKG_CONFIG NAMES pkg-config pkgconf)
if(NOT PKG_CONFIG)
    message(FATAL_ERROR "FAILED: pkg-config not found")
endif()
set(ENV{PKG_CONFIG_PATH} "${libdir}/pkgconfig")
hess_capture(pc_version "pkg-config --modversion" "${PKG_CONFIG}" --modversion hessian)
if(NOT pc_version STREQUAL VERSION)
    message(FATAL_ERROR "FAILED: pkg-config says version ${pc_version}, expected ${VERSION}")
endif()
hess_capture(pc_includedir "pkg-config includedir" "${PKG_CONFIG}" --variable=includedir hessian)
file(REAL_PATH "${pc_includedir}" pc_includedir)
file(REAL_PATH "${prefix}/${INCLUDEDIR}" want_includedir)
if(NOT pc_includedir STREQUAL want_includedir)
    message(FATAL_ERROR "FAILED: hessian.pc is not relocatable: includedir ${pc_includedir}, expected ${want_includedir}")
endif()
hess_capture(pc_static "pkg-config --static --libs" "${PKG_CONFIG}" --static --libs hessian)
if(NOT pc_static MATCHES "(^| )-lm( |$)")
    message(FATAL_ERROR "FAILED: pkg-config --static --libs hessian lacks -lm: ${pc_static}")
endif()
hess_capture(pc_flags "pkg-config --cflags --libs" "${PKG_CONFIG}" --cflags --libs hessian)
message(STATUS "pkg-config --cflags --libs hessian: ${pc_flags}")
separate_arguments(pc_flags UNIX_COMMAND "${pc_flags}")
set(exe "${WORK_DIR}/consumer_pc")
hess_run("cc main.c $(pkg-config --cflags --libs hessian)"
         "${C_COMPILER}" ${san_flags} "${CONSUMER_SOURCE_DIR}/main.c" ${pc_flags} -o "${exe}")
if(PC_RPATH)
    if(NOT pc_flags MATCHES "(^|;)-Wl,-rpath,[^;]+(;|$)")
        message(FATAL_ERROR "FAILED: pkg-config --libs hessian has no -Wl,-rpath,<libdir>: ${pc_flags}")
    endif()
    hess_check_runpath("${exe}" "${libdir}")
    hess_run_bare("run the pkg-config consumer against ${libdir}/libhessian.so" "${exe}")
else()
    # This build installs into a system libdir, where the loader looks anyway;
    # the scratch prefix is not one, so only here is the path given.
    message(STATUS "hessian.pc has no rpath (a system libdir): LD_LIBRARY_PATH for the scratch prefix")
    hess_run("run the pkg-config consumer against ${libdir}/libhessian.so"
             "${CMAKE_COMMAND}" -E env "LD_LIBRARY_PATH=${libdir}" "${exe}")
endif()

message(STATUS "package_consumer: all checks passed")
