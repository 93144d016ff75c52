// The pre-processing pipeline run before calibration.
#include "core/log.h"
#include "ir/passes/passes.h"

namespace oq::ir::passes {

PreprocessStats preprocess(Model& m) {
  PreprocessStats st;
  st.nodes_before = m.graph.nodes.size();
  st.folded_constants = fold_constants(m).total();
  st.removed_identities = remove_identity(m);
  st.folded_batchnorms = fold_batchnorm(m);
  st.folded_constants += fold_constants(m).total();
  st.nodes_after = m.graph.nodes.size();
  OQ_DEBUG("preprocess: {} -> {} nodes ({} constants folded, {} Identity/Dropout removed, {} BatchNormalization "
          "folded)",
          st.nodes_before, st.nodes_after, st.folded_constants, st.removed_identities, st.folded_batchnorms);
  return st;
}

}  // namespace oq::ir::passes
