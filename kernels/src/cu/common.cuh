// Shared definitions of ferrite's kernels. NVRTC compiles this file ahead
// of the kernel sources in one program, without any system header, so the
// integer types and the half-precision conversions are defined here.

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef int i32;
typedef long long i64;

// IEEE half precision, stored as its 16 bits; arithmetic happens in float.
struct f16 {
    u16 bits;
};

__device__ __forceinline__ float to_float(float v) { return v; }

__device__ __forceinline__ float to_float(f16 v) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v.bits));
    return f;
}

template <typename T> __device__ __forceinline__ T from_float(float v);

template <> __device__ __forceinline__ float from_float<float>(float v) { return v; }

// Round to nearest, ties to even, as the CPU reference does.
template <> __device__ __forceinline__ f16 from_float<f16>(float v) {
    f16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h.bits) : "f"(v));
    return h;
}

// The index of this thread in a one-dimensional grid, and the grid's size.
__device__ __forceinline__ u64 thread_index() {
    return (u64)blockIdx.x * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ u64 grid_size() { return (u64)gridDim.x * blockDim.x; }

#define MAX_RANK 6

// A contiguous output of `rank` dimensions read from up to two inputs
// through their own element strides (0 on a broadcast dimension).
struct Strided {
    u32 rank;
    u32 shape[MAX_RANK];
    u32 a[MAX_RANK];
    u32 b[MAX_RANK];
};

__device__ __forceinline__ void strided_offsets(const Strided& d, u64 i, u64& oa, u64& ob) {
    oa = 0;
    ob = 0;
    for (int k = (int)d.rank - 1; k >= 0; --k) {
        u64 extent = d.shape[k];
        u64 c = i % extent;
        i /= extent;
        oa += c * d.a[k];
        ob += c * d.b[k];
    }
}
