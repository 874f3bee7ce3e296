// Element-wise operations with broadcasting: the output is contiguous and
// each input is read through its own strides.

#define UNARY_IDENTITY 0
#define UNARY_RELU 1
#define UNARY_SIGMOID 2
#define UNARY_TANH 3

#define BINARY_ADD 0
#define BINARY_SUB 1
#define BINARY_MUL 2
#define BINARY_DIV 3

__device__ __forceinline__ float unary_op(u32 op, float x) {
    switch (op) {
    case UNARY_RELU:
        return x > 0.0f ? x : 0.0f;
    case UNARY_SIGMOID:
        return 1.0f / (1.0f + expf(-x));
    case UNARY_TANH:
        return tanhf(x);
    default:
        return x;
    }
}

template <typename T>
__device__ void unary(const T* x, T* y, u64 n, Strided d, u32 op) {
    for (u64 i = thread_index(); i < n; i += grid_size()) {
        u64 oa, ob;
        strided_offsets(d, i, oa, ob);
        y[i] = from_float<T>(unary_op(op, to_float(x[oa])));
    }
}

__device__ __forceinline__ float binary_float(u32 op, float a, float b) {
    switch (op) {
    case BINARY_SUB:
        return a - b;
    case BINARY_MUL:
        return a * b;
    case BINARY_DIV:
        return a / b;
    default:
        return a + b;
    }
}

// Integer division truncates; division by zero gives 0.
template <typename I>
__device__ __forceinline__ I binary_int(u32 op, I a, I b) {
    switch (op) {
    case BINARY_SUB:
        return a - b;
    case BINARY_MUL:
        return a * b;
    case BINARY_DIV:
        return b == 0 ? (I)0 : a / b;
    default:
        return a + b;
    }
}

template <typename T>
__device__ void binary_floating(const T* a, const T* b, T* y, u64 n, Strided d, u32 op) {
    for (u64 i = thread_index(); i < n; i += grid_size()) {
        u64 oa, ob;
        strided_offsets(d, i, oa, ob);
        y[i] = from_float<T>(binary_float(op, to_float(a[oa]), to_float(b[ob])));
    }
}

template <typename I>
__device__ void binary_integer(const I* a, const I* b, I* y, u64 n, Strided d, u32 op) {
    for (u64 i = thread_index(); i < n; i += grid_size()) {
        u64 oa, ob;
        strided_offsets(d, i, oa, ob);
        y[i] = binary_int<I>(op, a[oa], b[ob]);
    }
}

extern "C" __global__ void unary_f32(const float* x, float* y, u64 n, Strided d, u32 op) {
    unary<float>(x, y, n, d, op);
}

extern "C" __global__ void unary_f16(const f16* x, f16* y, u64 n, Strided d, u32 op) {
    unary<f16>(x, y, n, d, op);
}

extern "C" __global__ void binary_f32(const float* a, const float* b, float* y, u64 n, Strided d, u32 op) {
    binary_floating<float>(a, b, y, n, d, op);
}

extern "C" __global__ void binary_f16(const f16* a, const f16* b, f16* y, u64 n, Strided d, u32 op) {
    binary_floating<f16>(a, b, y, n, d, op);
}

extern "C" __global__ void binary_i32(const i32* a, const i32* b, i32* y, u64 n, Strided d, u32 op) {
    binary_integer<i32>(a, b, y, n, d, op);
}

extern "C" __global__ void binary_i64(const i64* a, const i64* b, i64* y, u64 n, Strided d, u32 op) {
    binary_integer<i64>(a, b, y, n, d, op);
}
