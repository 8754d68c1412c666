// Small shared definitions: element types of kernel inputs/outputs.
#pragma once

#include <cstdint>

namespace edgeseg {

enum class FloatType { F32, F16 };  // F16 = IEEE binary16 stored as uint16_t bits
enum class LabelType { U8, I32 };   // class-index outputs: uint8 when C <= 255, else int32

// Labels are uint8 when every index fits below the ignore value 255, i.e. C <= 255.
inline LabelType label_type_for(int64_t num_classes) {
  return num_classes <= 255 ? LabelType::U8 : LabelType::I32;
}

// Store n int32 class indices as the label type at out + offset (elements).
template <typename Index>
inline void store_labels(const Index* idx, void* out, LabelType lt, int64_t offset, int64_t n) {
  if (lt == LabelType::I32) {
    int32_t* o = static_cast<int32_t*>(out) + offset;
    for (int64_t i = 0; i < n; ++i) o[i] = static_cast<int32_t>(idx[i]);
  } else {
    uint8_t* o = static_cast<uint8_t*>(out) + offset;
    for (int64_t i = 0; i < n; ++i) o[i] = static_cast<uint8_t>(idx[i]);
  }
}

}  // namespace edgeseg
