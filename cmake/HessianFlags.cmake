# Per-target warnings, sanitizers and optional -march=native; never global flags.
include(GNUInstallDirs)

function(hessian_target_flags target)
    set_target_properties(${target} PROPERTIES C_STANDARD 11 C_STANDARD_REQUIRED ON C_EXTENSIONS OFF)
    if(CMAKE_C_COMPILER_ID MATCHES "GNU|Clang")
        target_compile_options(${target} PRIVATE
            -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes
            -Wcast-qual -Wvla)
        if(HESSIAN_WERROR)
            target_compile_options(${target} PRIVATE -Werror)
        endif()
        if(HESSIAN_NATIVE)
            target_compile_options(${target} PRIVATE -march=native)
        endif()
        if(HESSIAN_SANITIZE)
            string(REPLACE ";" "," _san "${HESSIAN_SANITIZE}")
            target_compile_options(${target} PRIVATE
                -fsanitize=${_san} -fno-omit-frame-pointer -fno-sanitize-recover=all)
            target_link_options(${target} PRIVATE -fsanitize=${_san})
        endif()
    endif()
endfunction()
