// Element type conversions.

// dst[i] = src[i] * scale + offset (one fused multiply-add).
extern "C" __global__ void u8_to_f32(const u8* src, float* dst, u64 n, float scale, float offset) {
    for (u64 i = thread_index(); i < n; i += grid_size()) {
        dst[i] = fmaf((float)src[i], scale, offset);
    }
}

extern "C" __global__ void f32_to_f16(const float* src, f16* dst, u64 n) {
    for (u64 i = thread_index(); i < n; i += grid_size()) {
        dst[i] = from_float<f16>(src[i]);
    }
}

extern "C" __global__ void f16_to_f32(const f16* src, float* dst, u64 n) {
    for (u64 i = thread_index(); i < n; i += grid_size()) {
        dst[i] = to_float(src[i]);
    }
}
