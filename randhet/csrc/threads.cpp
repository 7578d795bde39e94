// The floating-point mode of torch's intra-op threads (randhet.kernel.subnormals_flushed).
#include "randhet.h"

#include <ATen/Parallel.h>

#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

namespace randhet {

namespace {
#if defined(__x86_64__)
constexpr unsigned int kFtzDaz = 0x8040u;  // MXCSR's flush-to-zero (15) and denormals-are-zero (6)
#endif
}  // namespace

// This thread and every intra-op thread of torch's pool flush subnormal results to zero and
// read subnormal operands as zero (x86's FTZ and DAZ), or (``on`` false) stop doing so. The
// pool's threads are reached by one parallel_for of one item per thread (ATen's OpenMP
// backend gives each thread one). Returns whether this thread flushed before; false where the
// mode does not exist (not x86), where nothing changes.
bool flush_subnormals(bool on) {
#if defined(__x86_64__)
  const auto set = [on] {
    const unsigned int csr = _mm_getcsr();
    _mm_setcsr(on ? (csr | kFtzDaz) : (csr & ~kFtzDaz));
  };
  const bool was = (_mm_getcsr() & kFtzDaz) == kFtzDaz;
  const int64_t threads = at::get_num_threads();
  if (threads > 1) at::parallel_for(0, threads, 1, [&](int64_t, int64_t) { set(); });
  set();
  return was;
#else
  (void)on;
  return false;
#endif
}

}  // namespace randhet
