// Interim: full_auto lands in its own file (mode_full_auto.cc); this file is deleted when it does.
#include "app.h"
namespace oq::app {
}  // namespace oq::app
