// The loader's `service:` key (specs/pipeline.md, "Services"): a step that
// serves the steps that need it, with a readiness check.
#include <algorithm>
#include <set>
#include <string>

#include "spec/loader.h"

namespace sluice::spec::internal {

void Loader::LoadService(const YamlNode& key, const YamlNode& v, Step* s) {
  const std::string where = "step '" + s->id + "'";
  ServiceSpec svc;
  svc.pos = Pos(key);
  if (!v.IsMap()) {
    std::string text;
    if (!Scalar(v, "service", &text)) return;
    if (text == "false" || text == "False") return;
    // A wrong word still makes a service, so its port's readers are not reported too.
    if (text != "true" && text != "True") Error(Pos(v), where + ": service must be true or {ready, timeout}, not " + Quote(text));
    s->service = std::move(svc);
    return;
  }
  ForEachKey(v, kServiceKeys, where + " service", [&](const std::string& k, const YamlNode&, const YamlNode& c) {
    if (k == "timeout") {
      Millis d;
      if (!Duration(c, "the service's ready timeout", &d)) return;
      if (d.count() <= 0 || d > kMaxServiceReadyTimeout)
        Error(Pos(c), where + ": the service's ready timeout must be longer than 0 and at most 1h, not " +
                          Quote(c.Scalar()));
      else svc.timeout = d;
      return;
    }
    // ready: {tcp: true} | {http: /path} | {run: [argv]}
    if (!c.IsMap() || c.entries.size() != 1) {
      Error(Pos(c), where + ": ready must be one of {tcp: true}, {http: /path} or {run: [program, args...]}");
      return;
    }
    const YamlNode& kind_node = c.entries[0].first;
    const YamlNode& arg = c.entries[0].second;
    const std::string kind = kind_node.IsScalar() ? kind_node.Scalar() : "";
    if (kind == "tcp") {
      bool on = false;
      if (Bool(arg, "ready tcp", &on) && !on)
        Error(Pos(arg), where + ": ready tcp must be true (leave ready out for the same)");
      svc.ready = ServiceSpec::Ready::kTcp;
    } else if (kind == "http") {
      std::string path;
      if (!Scalar(arg, "ready http", &path)) return;
      if (path.empty() || path[0] != '/' || path.find_first_of(" \t\r\n") != std::string::npos ||
          path.find("${{") != std::string::npos)
        Error(Pos(arg), where + ": ready http must be a literal path starting with '/' and without spaces, not " +
                            Quote(path));
      else svc.http_path = path;
      svc.ready = ServiceSpec::Ready::kHttp;
    } else if (kind == "run") {
      svc.ready = ServiceSpec::Ready::kRun;
      if (!arg.IsSequence() || arg.items.empty()) {
        Error(Pos(arg), where + ": ready run must be a non-empty list of arguments (it reads the port from "
                                "$SLUICE_SERVICE_PORT)");
        return;
      }
      for (const YamlNode& e : arg.items) {
        std::string a;
        if (!Scalar(e, "each argument of ready run", &a)) continue;
        if (a.find("${{") != std::string::npos)
          Error(Pos(e), where + ": ready run is literal; it reads the port from $SLUICE_SERVICE_PORT");
        else svc.run.push_back(a);
      }
    } else {
      Error(Pos(kind_node), where + ": unknown ready check " + Quote(kind) + DidYouMean(kind, kReadyKinds) +
                                " (tcp, http or run)");
    }
  });
  s->service = std::move(svc);
}

void Loader::CheckServiceStep(const Step& s, const YamlNode* cache) {
  const std::string where = "step '" + s.id + "'";
  SourcePos at = s.service->pos;
  if (!s.uses.empty()) Error(at, where + ": a service is a run step; uses is not supported");
  if (s.has_foreach) Error(at, where + ": a service takes no foreach (one service per step)");
  if (s.is_finally) Error(at, where + ": a finally step cannot be a service (nothing runs after it to need it)");
  if (s.executor != "local") Error(at, where + ": a service runs on this machine (executor: local)");
  if (cache) Error(Pos(*cache), where + ": a service cannot be cached (it is stopped, not finished)");
  if (!s.outputs.empty()) Error(at, where + ": a service declares no outputs (its dependants read steps." + s.id + ".port)");
}

void Loader::CheckServices() {
  if (std::none_of(p_.steps.begin(), p_.steps.end(), [](const Step& s) { return s.service.has_value(); })) return;
  std::set<std::string> needed;
  for (const Step& d : p_.steps) needed.insert(d.needs.begin(), d.needs.end());
  for (size_t i = 0; i < p_.steps.size(); ++i) {
    const Step& s = p_.steps[i];
    if (!s.service) continue;
    cur_file_ = &FileOf(ScopeOfStep(i));
    if (!s.chain.empty())  // one service per item is not supported yet
      Error(s.service->pos, "service '" + s.id.substr(scopes_[ScopeOfStep(i)].prefix.size()) + "' is in call '" +
                                s.chain + "', which has foreach; a service runs once: call the template without "
                                "foreach, or keep the service outside it");
    if (needed.count(s.id)) continue;
    Error(s.service->pos, "service '" + s.id.substr(scopes_[ScopeOfStep(i)].prefix.size()) +
                              "' is needed by no step (a service runs while the steps that need it run)");
  }
  cur_file_ = &file_;
}

}  // namespace sluice::spec::internal
