// The nginx configuration the benchmarks measure beside sluice: a reverse
// proxy on 127.0.0.1:listen to 127.0.0.1:upstream (worker_processes 2, like
// the gateway's 2 I/O threads; upstream keepalive 64, HTTP/1.1), its pid,
// logs and temp files under `dir`. Used by gateway_bench and deploy_bench.
#pragma once

#include <filesystem>
#include <string>

namespace bench {

inline std::string ProxyConfig(const std::filesystem::path& dir, int listen, int upstream) {
  std::string d = dir.string();
  return "worker_processes 2;\npid " + d + "/proxy.pid;\nerror_log " + d + "/proxy.err;\n" +
         "events { worker_connections 4096; }\nhttp {\n  access_log off;\n  client_body_temp_path " + d +
         "/tmp;\n  proxy_temp_path " + d + "/tmp;\n  fastcgi_temp_path " + d + "/tmp;\n  uwsgi_temp_path " + d +
         "/tmp;\n  scgi_temp_path " + d + "/tmp;\n  keepalive_requests 1000000;\n" +
         "  upstream model {\n    server 127.0.0.1:" + std::to_string(upstream) +
         ";\n    keepalive 64;\n    keepalive_requests 1000000;\n  }\n" + "  server {\n    listen 127.0.0.1:" +
         std::to_string(listen) + ";\n    location / {\n      proxy_pass http://model;\n" +
         "      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n    }\n  }\n}\n";
}

}  // namespace bench
