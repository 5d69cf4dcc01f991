// A step's `service:` (specs/pipeline.md "Services"): its shapes, and its
// located errors word for word.
#include <gtest/gtest.h>

#include "spec/pipeline.h"
#include "../common/load_spec.h"

using sluice::Millis;
using sluice::spec::Pipeline;
using sluice::spec::ServiceSpec;

namespace {

using sluice::testing::load_spec::Error;
using sluice::testing::load_spec::Load;

// A spec whose step `db` has `service: <service>` and is needed by `use`.
std::string Spec(const std::string& service, const std::string& db_extra = "",
                 const std::string& use_run = "[echo, \"${{ steps.db.port }}\"]") {
  return "name: demo\nsteps:\n  db:\n    run: [serve, \"${{ service.port }}\"]\n    service: " + service + "\n" +
         db_extra + "  use:\n    needs: db\n    run: " + use_run + "\n";
}

}  // namespace

TEST(ServiceStepSpecTest, ServiceTrueChecksTcpForThirtySeconds) {
  Pipeline p = Load(Spec("true"));
  ASSERT_TRUE(p.steps[0].service);
  EXPECT_EQ(p.steps[0].service->ready, ServiceSpec::Ready::kTcp);
  EXPECT_EQ(p.steps[0].service->timeout, Millis(30000));
  EXPECT_FALSE(p.steps[1].service);
}

TEST(ServiceStepSpecTest, ServiceFalseIsAPlainStep) {
  Pipeline p = Load("name: demo\nsteps:\n  db: {run: x, service: false}\n");
  EXPECT_FALSE(p.steps[0].service);
}

TEST(ServiceStepSpecTest, AnHttpCheckKeepsItsPathAndTimeout) {
  Pipeline p = Load(Spec("{ready: {http: /health}, timeout: 1h}"));
  ASSERT_TRUE(p.steps[0].service);
  EXPECT_EQ(p.steps[0].service->ready, ServiceSpec::Ready::kHttp);
  EXPECT_EQ(p.steps[0].service->http_path, "/health");
  EXPECT_EQ(p.steps[0].service->timeout, Millis(3600000));
}

TEST(ServiceStepSpecTest, ARunCheckKeepsItsArgv) {
  Pipeline p = Load(Spec("{ready: {run: [sh, -c, 'nc -z 127.0.0.1 $SLUICE_SERVICE_PORT']}}"));
  ASSERT_TRUE(p.steps[0].service);
  EXPECT_EQ(p.steps[0].service->ready, ServiceSpec::Ready::kRun);
  EXPECT_EQ(p.steps[0].service->run, (std::vector<std::string>{"sh", "-c", "nc -z 127.0.0.1 $SLUICE_SERVICE_PORT"}));
}

TEST(ServiceStepSpecTest, DefaultsCacheDoesNotApplyToAService) {
  Pipeline p = Load("name: demo\ndefaults: {cache: true}\nsteps:\n  db: {run: x, service: true}\n"
                    "  use: {needs: db, run: y}\n");
  EXPECT_FALSE(p.steps[0].cache);
  EXPECT_TRUE(p.steps[1].cache);
}

TEST(ServiceStepSpecTest, AnUnknownReadyCheckIsAnError) {
  EXPECT_EQ(Error(Spec("{ready: {htp: /}}")),
            "p.yaml:5:23: step 'db': unknown ready check 'htp' (did you mean 'http'?) (tcp, http or run)");
}

TEST(ServiceStepSpecTest, AReadyCheckWithTwoKindsIsAnError) {
  EXPECT_EQ(Error(Spec("{ready: {tcp: true, http: /}}")),
            "p.yaml:5:22: step 'db': ready must be one of {tcp: true}, {http: /path} or {run: [program, args...]}");
}

TEST(ServiceStepSpecTest, AnHttpPathWithoutASlashIsAnError) {
  EXPECT_EQ(Error(Spec("{ready: {http: health}}")),
            "p.yaml:5:29: step 'db': ready http must be a literal path starting with '/' and without spaces, not "
            "'health'");
}

TEST(ServiceStepSpecTest, AnExpressionInAReadyRunIsAnError) {
  EXPECT_EQ(Error(Spec("{ready: {run: [check, \"${{ service.port }}\"]}}")),
            "p.yaml:5:36: step 'db': ready run is literal; it reads the port from $SLUICE_SERVICE_PORT");
}

TEST(ServiceStepSpecTest, AReadyTimeoutOfOneHourIsTheMost) {
  EXPECT_TRUE(Load(Spec("{timeout: 3600000ms}")).steps[0].service);
  EXPECT_EQ(Error(Spec("{timeout: 3600001ms}")),
            "p.yaml:5:24: step 'db': the service's ready timeout must be longer than 0 and at most 1h, not "
            "'3600001ms'");
}

TEST(ServiceStepSpecTest, AReadyTimeoutOfZeroIsAnError) {
  EXPECT_TRUE(Load(Spec("{timeout: 1ms}")).steps[0].service);
  EXPECT_EQ(Error(Spec("{timeout: 0s}")),
            "p.yaml:5:24: step 'db': the service's ready timeout must be longer than 0 and at most 1h, not '0s'");
}

TEST(ServiceStepSpecTest, ABadReadyTimeoutIsAnError) {
  EXPECT_EQ(Error(Spec("{timeout: soon}")),
            "p.yaml:5:24: bad duration 'soon' for the service's ready timeout (use a number and a unit: 500ms, 10s, "
            "5m, 2h)");
}

TEST(ServiceStepSpecTest, AServiceAsAWordIsAnError) {
  EXPECT_EQ(Error(Spec("yes")), "p.yaml:5:14: step 'db': service must be true or {ready, timeout}, not 'yes'");
}

TEST(ServiceStepSpecTest, AServiceNoStepNeedsIsAnError) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  db: {run: x, service: true}\n  other: {run: y}\n"),
            "p.yaml:3:16: service 'db' is needed by no step (a service runs while the steps that need it run)");
}

TEST(ServiceStepSpecTest, ACachedServiceIsAnError) {
  EXPECT_EQ(Error(Spec("true", "    cache: true\n")),
            "p.yaml:6:5: step 'db': a service cannot be cached (it is stopped, not finished)");
}

TEST(ServiceStepSpecTest, AForeachServiceIsAnError) {
  EXPECT_EQ(Error(Spec("true", "    foreach: [1, 2]\n")),
            "p.yaml:5:5: step 'db': a service takes no foreach (one service per step)");
}

TEST(ServiceStepSpecTest, AServiceWithOutputsIsAnError) {
  EXPECT_EQ(Error(Spec("true", "    outputs: {url: value}\n")),
            "p.yaml:5:5: step 'db': a service declares no outputs (its dependants read steps.db.port)");
}

TEST(ServiceStepSpecTest, AServiceOnSlurmIsAnError) {
  EXPECT_EQ(Error(Spec("true", "    executor: slurm\n")),
            "p.yaml:5:5: step 'db': a service runs on this machine (executor: local)");
}

TEST(ServiceStepSpecTest, AFinallyServiceIsAnError) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a: {run: x}\nfinally:\n  db: {run: x, service: true}\n"
                  "  f: {needs: db, run: y}\n"),
            "p.yaml:5:16: step 'db': a finally step cannot be a service (nothing runs after it to need it)");
}

TEST(ServiceStepSpecTest, ThePortOfAStepThatIsNotAServiceIsAnError) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  db: {run: x}\n  use: {needs: db, run: [echo, \"${{ steps.db.port }}\"]}\n"),
            "p.yaml:4:37: steps.db.port: step 'db' is not a service (only a service: step has a port)");
}

TEST(ServiceStepSpecTest, ServicePortOutsideAServiceIsAnError) {
  EXPECT_EQ(Error(Spec("true", "", "[echo, \"${{ service.port }}\"]")),
            "p.yaml:8:22: 'service.port' is only defined in a service: step (others read steps.<id>.port)");
}

TEST(ServiceStepSpecTest, ReadingTheServicesPortNeedsIt) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  db: {run: x, service: true}\n  a: {needs: db, run: y}\n"
                  "  b: {run: [echo, \"${{ steps.db.port }}\"]}\n"),
            "p.yaml:5:24: step 'b' reads steps.db but does not need it (add 'db' to its needs)");
}

TEST(ServiceStepSpecTest, AnUnknownFieldOfAServiceNamesItsPort) {
  EXPECT_EQ(Error(Spec("true", "", "[echo, \"${{ steps.db.prot }}\"]")),
            "p.yaml:8:22: expected steps.db.outputs.<name>, steps.db.state, steps.db.exit_code or steps.db.port");
}

TEST(ServiceStepSpecTest, AServiceInACallWithForeachIsAnError) {
  EXPECT_EQ(Error("name: demo\ntemplates:\n  t:\n    steps:\n      db: {run: x, service: true}\n"
                  "      use: {needs: db, run: y}\nsteps:\n  c: {call: t, foreach: [1, 2]}\n"),
            "p.yaml:5:20: service 'db' is in call 'c', which has foreach; a service runs once: call the template "
            "without foreach, or keep the service outside it");
}

TEST(ServiceStepSpecTest, AServiceInATemplateServesTheTemplatesSteps) {
  Pipeline p = Load("name: demo\ntemplates:\n  t:\n    steps:\n      db: {run: x, service: true}\n"
                    "      use: {needs: db, run: [echo, \"${{ steps.db.port }}\"]}\nsteps:\n  c: {call: t}\n");
  ASSERT_NE(p.FindStep("c.db"), nullptr);
  EXPECT_TRUE(p.FindStep("c.db")->service);
}
