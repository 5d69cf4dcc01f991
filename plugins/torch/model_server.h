// torch/serve: a TorchScript model behind the Open Inference Protocol v2
// (KServe's "v2" REST protocol), until the attempt is cancelled.
//
//   GET  /v2/health/live, /v2/health/ready, /v2, /v2/models/{name}, /v2/models/{name}/ready
//   POST /v2/models/{name}/infer   {"inputs": [{"name", "shape": [N, C, H, W], "datatype": "FP32", "data"}]}
//                                  (a tabular model: [N, F], or one [N] input per feature name)
//   GET  /metrics                  Prometheus text: requests, errors, latency histogram, batches
//
// HTTP is the project's Beast server (server/http.h): two I/O threads route
// requests and never run the model; header size, body size (Content-Length
// or chunked), a whole-request read deadline and the connection count are
// bounded there. Infer requests go to `threads` workers, with at most
// `max_queue` waiting (beyond that 503 with Retry-After), and are answered
// from the worker when done. With max_batch > 1 the workers' requests are
// gathered into micro-batches of at most max_batch images, waiting at most
// max_wait_ms for a batch to fill. Every request is bounded before it costs
// memory or stack (header count and size, body size, JSON depth and value
// count, finite numbers) and checked against the input the model file
// declares (infer_request.h: [C, H, W] or [F] with feature names, at most
// max_images rows, data count and types); a refusal is a 4xx with
// {"error": reason}. An optional bearer token (token_env) and a Host check
// (allowed_hosts), both made before the body is read (server/request_guard.h),
// keep web pages out. specs/model-server.md lists every limit.
#pragma once

#include <sluice/plugin.hpp>

namespace sluice::torchplugin {

struct Serve : sluice::Step {
  void run(sluice::Context& ctx) override;
};

}  // namespace sluice::torchplugin
