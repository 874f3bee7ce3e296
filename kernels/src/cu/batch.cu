// Batch gather and scatter: copies of byte segments between device
// buffers, all segments in one launch. Row `blockIdx.y` of the grid copies
// segment `blockIdx.y`; the threads of that row stride over its bytes, 16
// or 4 bytes at a time when the segment allows it.

struct Segment {
    u64 src;
    u64 dst;
    u64 bytes;
};

struct alignas(16) Bytes16 {
    u64 lo;
    u64 hi;
};

extern "C" __global__ void copy_segments(const Segment* segments, u32 count) {
    u32 s = blockIdx.y;
    if (s >= count) {
        return;
    }
    Segment seg = segments[s];
    u64 start = thread_index();
    u64 stride = grid_size();
    u64 alignment = seg.src | seg.dst | seg.bytes;
    if ((alignment & 15) == 0) {
        const Bytes16* src = (const Bytes16*)seg.src;
        Bytes16* dst = (Bytes16*)seg.dst;
        u64 n = seg.bytes / 16;
        for (u64 i = start; i < n; i += stride) {
            dst[i] = src[i];
        }
    } else if ((alignment & 3) == 0) {
        const u32* src = (const u32*)seg.src;
        u32* dst = (u32*)seg.dst;
        u64 n = seg.bytes / 4;
        for (u64 i = start; i < n; i += stride) {
            dst[i] = src[i];
        }
    } else {
        const u8* src = (const u8*)seg.src;
        u8* dst = (u8*)seg.dst;
        for (u64 i = start; i < seg.bytes; i += stride) {
            dst[i] = src[i];
        }
    }
}
