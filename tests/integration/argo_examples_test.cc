// Argo Workflows' own examples that a Sluice spec used to need a workaround
// for, re-told in Sluice's terms and run for real (`sluice run`, real
// processes, a real store). Each test names the Argo example and checks what
// Argo's documentation says it does. The others live beside the feature they
// exercise: dag-diamond-steps as a template (templates_test.cc),
// suspend-template (approval_test.cc), exit-handlers on cancel and
// timeouts-workflow (flow_test.cc).
#include <gtest/gtest.h>

#include "harness.h"

using namespace sluice::testing;

// loops-maps: `withItems` of maps, each item's fields read by name.
TEST(ArgoExamplesTest, LoopsMapsRunsOneItemPerMapAndEachReadsItsFields) {
  Sandbox box;
  box.Write("p.yaml", R"(name: loops-maps
steps:
  test-linux:
    foreach:
      - {image: debian, tag: "9.1"}
      - {image: debian, tag: "8.9"}
      - {image: alpine, tag: "3.6"}
      - {image: ubuntu, tag: "17.10"}
    run: echo "os=${{ item.image }}:${{ item.tag }}" >> "$SLUICE_OUTPUT"
  collect:
    needs: [test-linux]
    run: ['sh', '-c', 'printf "%s" "$1" > os.out', 'x', '${{ steps.test-linux.outputs.os }}']
)");
  Output o = box.Sluice({"run", "p.yaml"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_EQ(box.Read("os.out"), R"(["debian:9.1","debian:8.9","alpine:3.6","ubuntu:17.10"])");
}

// conditionals-complex: `when` with && and || over two coin flips, and
// regex matches (`=~`). The coins come from params so the test is exact.
TEST(ArgoExamplesTest, ConditionalsComplexRunsExactlyTheStepsWhoseConditionHolds) {
  Sandbox box;
  box.Write("p.yaml", R"(name: conditionals-complex
params:
  first: {type: string, default: heads, enum: [heads, tails]}
  second: {type: string, default: tails, enum: [heads, tails]}
steps:
  flip-coin:
    run: echo "result=${{ params.first }}" >> "$SLUICE_OUTPUT"
  flip-again:
    needs: [flip-coin]
    run: echo "result=${{ params.second }}" >> "$SLUICE_OUTPUT"
  complex-condition:
    needs: [flip-again]
    if: >-
      ${{ (steps.flip-coin.outputs.result == 'heads' && steps.flip-again.outputs.result == 'tails')
          || (steps.flip-coin.outputs.result == 'tails' && steps.flip-again.outputs.result == 'tails') }}
    run: "true"
  heads-regex:
    needs: [flip-again]
    if: ${{ matches(steps.flip-again.outputs.result, 'hea') }}
    run: "true"
  tails-regex:
    needs: [flip-again]
    if: ${{ matches(steps.flip-again.outputs.result, 'tai') }}
    run: "true"
)");
  Output o = box.Sluice({"run", "p.yaml"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  nlohmann::json run = ShowRun(box, "latest");
  EXPECT_EQ(StepOf(run, "complex-condition")["state"], "succeeded");
  EXPECT_EQ(StepOf(run, "heads-regex")["state"], "skipped");
  EXPECT_EQ(StepOf(run, "tails-regex")["state"], "succeeded");

  o = box.Sluice({"run", "p.yaml", "-p", "first=heads", "-p", "second=heads"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  run = ShowRun(box, "latest");
  EXPECT_EQ(StepOf(run, "complex-condition")["state"], "skipped");
  EXPECT_EQ(StepOf(run, "heads-regex")["state"], "succeeded");
  EXPECT_EQ(StepOf(run, "tails-regex")["state"], "skipped");
}

// retry-conditional: `retryStrategy.expression: asInt(lastRetry.exitCode) > 1`
// retries while the exit code is above 1 (within the limit) and stops at the
// first attempt that exits 1. The attempts exit 3, 2, 1 here, in turn.
TEST(ArgoExamplesTest, RetryConditionalRetriesWhileTheExitCodeIsAboveOneAndStopsAtOne) {
  Sandbox box;
  box.Write("p.yaml", R"(name: retry-conditional
steps:
  safe-to-retry:
    retry: {limit: 10, on: "${{ attempt.exit_code > 1 }}"}
    run: n=$(cat tries 2>/dev/null || echo 0); n=$((n + 1)); echo $n > tries; exit $((4 - n))
)");
  Output o = box.Sluice({"run", "p.yaml"});
  EXPECT_EQ(o.code, 1) << o.out << o.err;
  EXPECT_EQ(box.Read("tries"), "3\n");
  nlohmann::json step = StepOf(ShowRun(box, "latest"), "safe-to-retry");
  EXPECT_EQ(step["state"], "failed");
  ASSERT_EQ(step["attempts"].size(), 3u);
  EXPECT_EQ(step["attempts"][2]["exit_code"], 1);
}

// dag-daemon-task (daemon-step): an InfluxDB daemon with a readinessProbe
// (`httpGet /ping`) serves the DAG: init-database creates a database, three
// producers write points to it, a consumer queries them; the daemon is
// stopped when the tasks that use it are done. InfluxDB is replaced by a
// few lines of Python with the same three routes.
TEST(ArgoExamplesTest, DagDaemonTaskServesTheDatabaseToEveryTaskThatNeedsItThenStopsIt) {
  Sandbox box;
  box.Write("influx.py", R"(import http.server, sys, urllib.parse
dbs = {}
class H(http.server.BaseHTTPRequestHandler):
    def answer(self, code, body=b''):
        self.send_response(code)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        if u.path == '/ping':
            return self.answer(204)
        db = urllib.parse.parse_qs(u.query).get('db', [''])[0]
        if db not in dbs:
            return self.answer(404, b'database not found\n')
        self.answer(200, ''.join(p + '\n' for p in sorted(dbs[db])).encode())
    def do_POST(self):
        u = urllib.parse.urlparse(self.path)
        body = self.rfile.read(int(self.headers.get('Content-Length', 0))).decode()
        if u.path == '/query':
            dbs.setdefault(urllib.parse.parse_qs(body)['q'][0].split()[-1], [])
            return self.answer(200, b'{}\n')
        db = urllib.parse.parse_qs(u.query).get('db', [''])[0]
        if db not in dbs:
            return self.answer(404, b'database not found\n')
        dbs[db].append(body)
        self.answer(204)
    def log_message(self, *args):
        pass
with open('influx.pid', 'w') as f:
    f.write(str(__import__('os').getpid()) + '\n')
http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
)");
  std::string producer =
      "    needs: [influx, init-database]\n"
      "    env: {PORT: \"${{ steps.influx.port }}\"}\n"
      "    run: for i in 1 2 3 4 5; do curl -fsS -XPOST \"http://127.0.0.1:$PORT/write?db=mydb\" -d "
      "\"cpu,host=server0N load=$i\" || exit 1; done\n";
  auto producer_n = [&](char n) {
    std::string p = producer;
    p.replace(p.find("server0N"), 8, std::string("server0") + n);
    return p;
  };
  box.Write("p.yaml", std::string(R"(name: dag-daemon-task
steps:
  influx:
    run: [python3, influx.py, "${{ service.port }}"]
    service: {ready: {http: /ping}, timeout: 30s}
    retry: 2
  init-database:
    needs: influx
    run: [curl, -fsS, -XPOST, "http://127.0.0.1:${{ steps.influx.port }}/query", --data-urlencode, "q=CREATE DATABASE mydb"]
  producer-1:
)") + producer_n('1') + "  producer-2:\n" + producer_n('2') + "  producer-3:\n" + producer_n('3') +
                          R"(  consumer:
    needs: [influx, producer-1, producer-2, producer-3]
    run: [curl, -fsS, -G, "http://127.0.0.1:${{ steps.influx.port }}/query", --data-urlencode, db=mydb, -o, consumed.txt]
)");
  Output o = box.Sluice({"run", "p.yaml"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  std::string consumed = box.Read("consumed.txt");
  for (const char* host : {"server01", "server02", "server03"})
    for (int i = 1; i <= 5; ++i)
      EXPECT_EQ(CountLines(consumed, std::string("cpu,host=") + host + " load=" + std::to_string(i)), 1) << consumed;
  nlohmann::json run = ShowRun(box, "latest");
  EXPECT_EQ(StepOf(run, "influx")["state"], "succeeded");
  EXPECT_FALSE(ProcessAlive(std::stoi(box.Read("influx.pid"))));
}
