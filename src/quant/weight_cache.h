// Cache of weight quantization across the many models a search builds (full_auto): each weight tensor is
// quantized at most once per (type, axis) — parameters (min/max, MSE or GPTQ), modified values and the
// quantized tensor. Not thread-safe; one per search.
#pragma once
#include <map>
#include <string>
#include <tuple>

#include "core/tensor.h"
#include "exec/session.h"

namespace oq::quant {

class WeightCache {
 public:
  struct Entry {
    exec::QuantParams params;  // as chosen, before any int32-bias scale adjustment
    Tensor values;             // modified float values (GPTQ) or undefined
    exec::QuantParams written_params;  // parameters `quantized` was made with
    Tensor quantized;
  };
  using Key = std::tuple<std::string, DType, int>;
  Entry* find(const std::string& name, DType t, int axis) {
    auto it = entries_.find({name, t, axis});
    return it == entries_.end() ? nullptr : &it->second;
  }
  Entry& at(const std::string& name, DType t, int axis) { return entries_[{name, t, axis}]; }
  size_t size() const { return entries_.size(); }

 private:
  std::map<Key, Entry> entries_;
};

inline bool same_quant_params(const exec::QuantParams& a, const exec::QuantParams& b) {
  return a.qtype == b.qtype && a.axis == b.axis && a.scale == b.scale && a.zero_point == b.zero_point &&
         a.scale_type == b.scale_type;
}

}  // namespace oq::quant
