// full_auto's `metric: evaluator_command`: runs the user's command on a candidate model and reads its score.
#pragma once
#include <string>

namespace oq::app {

// Runs `cmd_template` with every {model} replaced by `model_path` (quoted as one shell word) through /bin/sh, in a
// process group of its own that an interruption of onnxquant ends (run_guard.h). The score is the last non-blank
// line of its standard output, a plain finite decimal number read whatever the locale (search/score_line.h).
// A Runtime error naming the command when it fails, is killed, prints nothing or prints anything else last
// (quoting the line; a decimal comma is named as such).
double run_evaluator_command(const std::string& cmd_template, const std::string& model_path);

}  // namespace oq::app
