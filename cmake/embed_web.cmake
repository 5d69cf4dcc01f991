# Writes OUT, a C++ source holding every file of FILES (a |-separated list) as bytes,
# with the table FindWebAsset() searches. Run by the build (cmake -P). A file whose
# name is not a plain URL path segment, or whose type is not known here, stops the
# build: everything in web/ is served, so each file must be served right (ES modules
# are refused by browsers unless they come as JavaScript).
string(REPLACE "|" ";" FILES "${FILES}")
set(body "")
set(table "")
set(i 0)
foreach(f IN LISTS FILES)
  file(READ "${f}" hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
  file(SIZE "${f}" size)
  get_filename_component(name "${f}" NAME)
  get_filename_component(ext "${f}" LAST_EXT)
  if(NOT name MATCHES "^[A-Za-z0-9_-][A-Za-z0-9._-]*$")
    message(FATAL_ERROR "${f}: a web file's name must be letters, digits, '.', '-' and '_' (it is served as /NAME)")
  endif()
  if(ext STREQUAL ".html")
    set(type "text/html; charset=utf-8")
  elseif(ext STREQUAL ".js")
    set(type "text/javascript; charset=utf-8")
  elseif(ext STREQUAL ".css")
    set(type "text/css; charset=utf-8")
  elseif(ext STREQUAL ".svg")
    set(type "image/svg+xml")
  else()
    message(FATAL_ERROR "${f}: no content type for '${ext}' files; add one in cmake/embed_web.cmake")
  endif()
  string(APPEND body "const unsigned char kFile${i}[] = {${hex} 0};\n")
  string(APPEND table "    {\"${name}\", \"${type}\", kFile${i}, ${size}},\n")
  math(EXPR i "${i} + 1")
endforeach()
file(WRITE "${OUT}.tmp" "// Generated from web/ by cmake/embed_web.cmake; do not edit.
#include \"server/web_assets.h\"

namespace sluice::server {
namespace {
${body}
const WebAsset kAssets[] = {
${table}};
}  // namespace

const WebAsset* FindWebAsset(std::string_view name) {
  for (const WebAsset& a : kAssets)
    if (name == a.name) return &a;
  return nullptr;
}

}  // namespace sluice::server
")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
