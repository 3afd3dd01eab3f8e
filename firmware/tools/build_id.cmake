# tinyml_build_id(<out_var> <python> <firmware_root> [<components>]): the build id of the image's sources and of
# the resolved kernel components (<components>: "esp-tflite-micro=1.4.0,esp-nn=1.2.3"), computed by
# tools/build_id.py (the file pytest-tinyml itself uses), so a board built and flashed by hand with plain
# `idf.py build flash` reports the id pytest-tinyml expects. CMake re-configures when any of those files
# changes, so the id follows the sources. On failure <out_var> stays unset (the board then reports its ELF hash).
function(tinyml_build_id out_var python root)
    set(components_args "")
    if(ARGC GREATER 3)
        set(components_args --components "${ARGV3}")
    endif()
    execute_process(COMMAND "${python}" "${root}/tools/build_id.py" "${root}" --files
                    OUTPUT_VARIABLE files OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE files_rc)
    execute_process(COMMAND "${python}" "${root}/tools/build_id.py" "${root}" ${components_args}
                    OUTPUT_VARIABLE id OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE id_rc)
    if(NOT files_rc EQUAL 0 OR NOT id_rc EQUAL 0 OR NOT id MATCHES "^[0-9a-f]+$")
        message(WARNING "tinyml: tools/build_id.py failed (${id_rc}); the board will report its ELF hash")
        return()
    endif()
    if(NOT CMAKE_SCRIPT_MODE_FILE)
        set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${files})
    endif()
    set(${out_var} "${id}" PARENT_SCOPE)
endfunction()
