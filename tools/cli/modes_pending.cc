// Interim: inspection and full_auto land in their own files (mode_inspection.cc, mode_full_auto.cc);
// this file is deleted when they do.
#include "app.h"
namespace oq::app {
int run_inspection_mode(Job&) { fail(ErrorKind::Usage, "quantization.operating_mode: inspection is not available in this build yet"); }
int run_full_auto_mode(Job&) { fail(ErrorKind::Usage, "quantization.operating_mode: full_auto is not available in this build yet"); }
}  // namespace oq::app
