// torch/serve: a TorchScript model behind the Open Inference Protocol v2
// (KServe's "v2" REST protocol), until the attempt is cancelled.
//
//   GET  /v2/health/live, /v2/health/ready, /v2, /v2/models/{name}, /v2/models/{name}/ready
//   POST /v2/models/{name}/infer   {"inputs": [{"name", "shape": [N, C, H, W], "datatype": "FP32", "data"}]}
//   GET  /metrics                  Prometheus text: requests, errors, latency histogram, batches
//
// Requests run on a pool of threads; with max_batch > 1 they are gathered
// into micro-batches of at most max_batch images, waiting at most
// max_wait_ms for a batch to fill. Every request is checked (JSON, one FP32
// input, the model's [C, H, W], at most max_images images, data count and
// types) and a bad one gets a 400 {"error": reason}; a body over
// max_body_bytes gets 413 before it is parsed.
#pragma once

#include <sluice/plugin.hpp>

namespace sluice::torchplugin {

struct Serve : sluice::Step {
  void run(sluice::Context& ctx) override;
};

}  // namespace sluice::torchplugin
