// A foreach matrix's combinations (spec/pipeline.h, Matrix).
#include <algorithm>

#include "spec/pipeline.h"

namespace sluice::spec {

namespace {

// Whether every key of `entry` that `combo` has holds the same value there.
bool Agrees(const Map& entry, const Map& combo, const std::vector<Matrix::Axis>& axes, bool original_keys_only) {
  for (const auto& kv : entry) {
    const std::string& k = kv.first;  // a plain name: clang 14 cannot capture a structured binding
    if (original_keys_only &&
        std::none_of(axes.begin(), axes.end(), [&](const Matrix::Axis& a) { return a.key == k; }))
      continue;
    auto it = combo.find(k);
    if (it == combo.end() || !LooseEquals(it->second, kv.second)) return false;
  }
  return true;
}

Status TooMany(size_t n) {
  return Status::InvalidSpec("the matrix makes " + std::to_string(n) + " or more combinations, over the limit of " +
                             std::to_string(kMaxForeachItems));
}

}  // namespace

Result<List> ExpandMatrix(const Matrix& m, const EvalContext& ctx) {
  std::vector<const List*> values;
  std::vector<List> evaluated(m.axes.size());
  for (size_t i = 0; i < m.axes.size(); ++i) {
    const Matrix::Axis& a = m.axes[i];
    if (!a.expr) {
      values.push_back(&a.values);
      continue;
    }
    auto v = EvaluateTemplate(*a.expr, ctx);
    if (!v.ok()) return v.status().WithContext("matrix " + a.key);
    if (!v->is_list())
      return Status::InvalidSpec("matrix " + a.key + ": " + a.expr->source + " gave a " + Value::TypeName(v->type()) +
                                 ", not a list");
    evaluated[i] = v->as_list();
    values.push_back(&evaluated[i]);
  }
  // The cross product, the first key outermost; an empty key makes none.
  size_t count = m.axes.empty() ? 0 : 1;
  for (const List* l : values) {
    if (l->empty()) count = 0;
    else if (count > kMaxForeachItems / l->size() + 1) return TooMany(kMaxForeachItems + 1);
    else count *= l->size();
  }
  if (count > kMaxForeachItems) return TooMany(count);
  std::vector<Map> combos;
  combos.reserve(count);
  for (size_t n = 0; n < count; ++n) {
    Map c;
    size_t rest = n;
    for (size_t i = values.size(); i-- > 0;) {
      c[m.axes[i].key] = (*values[i])[rest % values[i]->size()];
      rest /= values[i]->size();
    }
    bool excluded = std::any_of(m.exclude.begin(), m.exclude.end(),
                                [&](const Map& x) { return Agrees(x, c, m.axes, /*original_keys_only=*/false); });
    if (!excluded) combos.push_back(std::move(c));
  }
  // include: an entry extends every combination whose original values it
  // agrees with (it never overwrites one; values added by an earlier entry
  // it may); an entry that extends none is a combination of its own.
  size_t originals = combos.size();
  std::vector<Map> original(combos.begin(), combos.end());
  for (const Map& entry : m.include) {
    bool used = false;
    for (size_t i = 0; i < originals; ++i) {
      if (!Agrees(entry, original[i], m.axes, /*original_keys_only=*/true)) continue;
      for (const auto& [k, v] : entry) combos[i][k] = v;
      used = true;
    }
    if (!used) {
      if (combos.size() >= kMaxForeachItems) return TooMany(combos.size() + 1);
      combos.push_back(entry);
    }
  }
  List items;
  items.reserve(combos.size());
  for (Map& c : combos) items.push_back(Value::Of(std::move(c)));
  return items;
}

}  // namespace sluice::spec
