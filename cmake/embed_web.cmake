# Writes OUT, a C++ source holding every file of FILES (a |-separated list) as bytes,
# with the table FindWebAsset() searches. Run by the build (cmake -P).
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
  if(ext STREQUAL ".html")
    set(type "text/html; charset=utf-8")
  elseif(ext STREQUAL ".js")
    set(type "text/javascript; charset=utf-8")
  elseif(ext STREQUAL ".css")
    set(type "text/css; charset=utf-8")
  elseif(ext STREQUAL ".svg")
    set(type "image/svg+xml")
  else()
    set(type "application/octet-stream")
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
