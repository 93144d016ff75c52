// full_auto reports: full_auto.json and a self-contained full_auto.html (no network).
#pragma once
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "analysis/precision.h"

namespace oq::analysis {

struct FullAutoAttempt {
  int64_t n_int8 = 0;
  std::vector<std::string> int8_tensors;
  double w4_percent = 0;   // percent of the quantized constants' parameters in Int4 (int32 biases excepted)
  PrecisionCounts bits;    // every bit width of the attempt's model (counted from its graph)
  uint64_t model_bytes = 0;
  double score = 0;
  bool passed = false;
  std::string file;        // written model ("" if not written)
};

// ranking: sensitivity: the samples it ran (the dataset's names for them, e.g. "calib.npz row 17") and each
// candidate's output SNR in dB, in the order measured.
struct SensitivityReport {
  std::vector<std::string> samples;
  std::vector<std::pair<std::string, double>> snr_db;
};

struct FullAutoReport {
  std::string model;
  std::string metric;      // top1 | agreement | output_snr | evaluator_command
  std::string unit;        // "%" or "dB"
  double tolerance = 0;
  std::string tolerance_mode;
  double threshold = 0;    // passing score
  // The float model's score; none with metric output_snr, whose reference is the float model itself (its SNR
  // against itself is infinite): reported as null in the JSON and left out of the chart.
  std::optional<double> float_score;
  double int8_score = 0, int4_score = 0;
  std::string int8_file;
  PrecisionCounts int8_bits;  // the 8-bit reference's widths (16-bit overrides stay 16-bit there)
  int64_t n_tensors = 0;
  int64_t ranked_weights = 0;     // parameters of the ranked (candidate) tensors
  int64_t quantized_weights = 0;  // parameters of every quantized constant (the 4-bit share's denominator)
  std::vector<std::string> ranking;  // tensor names, highest rank first
  std::vector<FullAutoAttempt> attempts;
  std::optional<size_t> answer;      // index into attempts
  std::optional<SensitivityReport> sensitivity;
};

std::string full_auto_json(const FullAutoReport& r);
std::string full_auto_html(const FullAutoReport& r);

}  // namespace oq::analysis
