// Vectorised classification kernels behind Binner::scan (binning.h): one per instruction set (AVX-512F,
// AVX2, SSE2, scalar), chosen at run time, all giving the same counts (the AVX-512 one leaves a few more
// values to be settled on the edges). Internal to src/calib.
#pragma once
#include <cstdint>

#include "calib/binning.h"

namespace oq::calib::kernels {

inline constexpr int64_t kBlock = 1024;  // values classified, settled and counted at a time

// One block of values, classified. bins[0..nbins): the exact bins of the values the estimate decides, in any
// order; pos[0..npos): the positions (in the block) of the values to settle on the edges; zero / hi / lo:
// how many values equal 0, grid.hi, grid.lo (checked in that order; typically the bulk of a ReLU's output,
// which would otherwise hammer one counter). Everything else is not counted. Vector kernels store whole
// vectors at bins + nbins: hence the slack.
struct Block {
  int32_t bins[kBlock + 16];
  int32_t pos[kBlock + 16];
  int64_t nbins = 0, npos = 0, zero = 0, hi = 0, lo = 0;
};

// Classifies x[0..n), n <= kBlock, into b (reset first) with the widest kernel this CPU has, and updates the
// running min / max of the raw values (NaN skipped).
void classify(const BinGrid& g, const float* x, int64_t n, bool absolute, Block& b, float& mn, float& mx);
// Caps the kernel width (see set_binning_lanes).
void set_max_lanes(int lanes);

}  // namespace oq::calib::kernels
