// Neural-network operators: softmax, 2-D convolution, 2-D pooling and
// global average pooling. Every output element is computed by one thread,
// accumulating in float in a fixed order (the CPU reference's order).

// Softmax over the middle axis of an (outer, axis, inner) view.
template <typename T>
__device__ void softmax(const T* x, T* y, u32 outer, u32 axis, u32 inner) {
    u64 total = (u64)outer * inner;
    for (u64 t = thread_index(); t < total; t += grid_size()) {
        u64 o = t / inner;
        u64 j = t % inner;
        u64 base = o * axis * inner + j;
        float m = to_float(x[base]);
        for (u32 k = 1; k < axis; ++k) {
            m = fmaxf(m, to_float(x[base + (u64)k * inner]));
        }
        float sum = 0.0f;
        for (u32 k = 0; k < axis; ++k) {
            sum += expf(to_float(x[base + (u64)k * inner]) - m);
        }
        for (u32 k = 0; k < axis; ++k) {
            u64 at = base + (u64)k * inner;
            y[at] = from_float<T>(expf(to_float(x[at]) - m) / sum);
        }
    }
}

struct Conv2d {
    u32 n, c_in, h, w;
    u32 c_out, kh, kw;
    u32 oh, ow;
    u32 stride_h, stride_w;
    u32 pad_h, pad_w;
    u32 dil_h, dil_w;
    u32 groups;
    u32 has_bias;
};

// NCHW input, [c_out, c_in / groups, kh, kw] weights, optional [c_out] bias.
template <typename T>
__device__ void conv2d(const T* x, const T* w, const T* bias, T* y, Conv2d p) {
    u64 total = (u64)p.n * p.c_out * p.oh * p.ow;
    u32 cin_group = p.c_in / p.groups;
    u32 cout_group = p.c_out / p.groups;
    for (u64 t = thread_index(); t < total; t += grid_size()) {
        u64 ox = t % p.ow;
        u64 oy = (t / p.ow) % p.oh;
        u64 co = (t / ((u64)p.ow * p.oh)) % p.c_out;
        u64 b = t / ((u64)p.ow * p.oh * p.c_out);
        u64 g = co / cout_group;
        float acc = p.has_bias ? to_float(bias[co]) : 0.0f;
        for (u32 ci = 0; ci < cin_group; ++ci) {
            u64 channel = g * cin_group + ci;
            const T* plane = x + (b * p.c_in + channel) * p.h * p.w;
            const T* kernel = w + (co * cin_group + ci) * p.kh * p.kw;
            for (u32 ky = 0; ky < p.kh; ++ky) {
                long long iy = (long long)(oy * p.stride_h + ky * p.dil_h) - p.pad_h;
                if (iy < 0 || iy >= p.h) {
                    continue;
                }
                for (u32 kx = 0; kx < p.kw; ++kx) {
                    long long ix = (long long)(ox * p.stride_w + kx * p.dil_w) - p.pad_w;
                    if (ix < 0 || ix >= p.w) {
                        continue;
                    }
                    acc = fmaf(to_float(plane[iy * p.w + ix]), to_float(kernel[ky * p.kw + kx]), acc);
                }
            }
        }
        y[t] = from_float<T>(acc);
    }
}

#define POOL_MAX 0
#define POOL_AVERAGE 1

struct Pool2d {
    u32 n, c, h, w;
    u32 kh, kw;
    u32 oh, ow;
    u32 stride_h, stride_w;
    u32 pad_h, pad_w;
    u32 dil_h, dil_w;
    u32 mode;
    u32 count_include_pad;
};

// Windows never lie wholly in the padding (pads are smaller than the
// kernel), so a max always has an element.
template <typename T>
__device__ void pool2d(const T* x, T* y, Pool2d p) {
    u64 total = (u64)p.n * p.c * p.oh * p.ow;
    for (u64 t = thread_index(); t < total; t += grid_size()) {
        u64 ox = t % p.ow;
        u64 oy = (t / p.ow) % p.oh;
        u64 plane_index = t / ((u64)p.ow * p.oh);
        const T* plane = x + plane_index * p.h * p.w;
        float best = 0.0f;
        float sum = 0.0f;
        u32 count = 0;
        for (u32 ky = 0; ky < p.kh; ++ky) {
            long long iy = (long long)(oy * p.stride_h + ky * p.dil_h) - p.pad_h;
            if (iy < 0 || iy >= p.h) {
                continue;
            }
            for (u32 kx = 0; kx < p.kw; ++kx) {
                long long ix = (long long)(ox * p.stride_w + kx * p.dil_w) - p.pad_w;
                if (ix < 0 || ix >= p.w) {
                    continue;
                }
                float v = to_float(plane[iy * p.w + ix]);
                best = (count == 0 || v > best) ? v : best;
                sum += v;
                count += 1;
            }
        }
        float out;
        if (p.mode == POOL_MAX) {
            out = best;
        } else {
            float divisor = p.count_include_pad ? (float)(p.kh * p.kw) : (float)count;
            out = sum / divisor;
        }
        y[t] = from_float<T>(out);
    }
}

// Mean over each of `planes` contiguous planes of `size` elements.
template <typename T>
__device__ void global_average_pool(const T* x, T* y, u32 planes, u32 size) {
    for (u64 t = thread_index(); t < planes; t += grid_size()) {
        const T* plane = x + t * size;
        float sum = 0.0f;
        for (u32 i = 0; i < size; ++i) {
            sum += to_float(plane[i]);
        }
        y[t] = from_float<T>(sum / (float)size);
    }
}

extern "C" __global__ void softmax_f32(const float* x, float* y, u32 outer, u32 axis, u32 inner) {
    softmax<float>(x, y, outer, axis, inner);
}

extern "C" __global__ void softmax_f16(const f16* x, f16* y, u32 outer, u32 axis, u32 inner) {
    softmax<f16>(x, y, outer, axis, inner);
}

extern "C" __global__ void conv2d_f32(const float* x, const float* w, const float* bias, float* y, Conv2d p) {
    conv2d<float>(x, w, bias, y, p);
}

extern "C" __global__ void conv2d_f16(const f16* x, const f16* w, const f16* bias, f16* y, Conv2d p) {
    conv2d<f16>(x, w, bias, y, p);
}

extern "C" __global__ void pool2d_f32(const float* x, float* y, Pool2d p) {
    pool2d<float>(x, y, p);
}

extern "C" __global__ void pool2d_f16(const f16* x, f16* y, Pool2d p) {
    pool2d<f16>(x, y, p);
}

extern "C" __global__ void global_average_pool_f32(const float* x, float* y, u32 planes, u32 size) {
    global_average_pool<float>(x, y, planes, size);
}

extern "C" __global__ void global_average_pool_f16(const f16* x, f16* y, u32 planes, u32 size) {
    global_average_pool<f16>(x, y, planes, size);
}
