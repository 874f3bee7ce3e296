//! The load-time check: analysing the model with the config's shapes, so
//! that a model tract cannot run fails to load rather than at its first
//! request.
//!
//! tract analyses every branch of an `If` with the shapes it is given, so a
//! model whose branches disagree (Silero VAD's, for one) only fails once its
//! dimensions are known well enough. The check therefore analyses up to
//! three times:
//!
//! 1. with the batch dimension as a symbol and other dynamic dimensions left
//!    open: a failure here is final;
//! 2. with every dynamic dimension a symbol of its own: success ends the
//!    check;
//! 3. failing that, with sample sizes for the dynamic dimensions, because
//!    tract's symbolic reasoning cannot prove every equality that holds for
//!    real sizes (a detector whose feature maps are concatenated after
//!    strided convolutions, say). If the model analyses with real sizes it
//!    is accepted; otherwise it is refused with that reason.

use tract_onnx::prelude::{
    DatumType, InferenceFact, InferenceModel, InferenceModelExt, TDim, TVec,
};
use tract_onnx::tract_hir::infer::{GenericFactoid, ShapeFactoid};

use crate::engine::io::IoMap;

/// The size given to each dynamic dimension in the third analysis.
const SAMPLE_SIZE: i64 = 64;

/// How the dynamic dimensions are described to the analysis.
#[derive(Clone, Copy)]
enum Dynamic {
    /// Batch as a symbol, other dynamic dimensions open.
    Open,
    /// Each dynamic dimension its own symbol (the batch shared).
    Symbols,
    /// Batch 1, other dynamic dimensions [`SAMPLE_SIZE`].
    Sample,
}

/// Checks that tract can analyse the model with the config's shapes. The
/// error is tract's reason.
pub(super) fn check(
    model: &InferenceModel,
    io: &IoMap,
    input_types: &[DatumType],
) -> Result<(), String> {
    analyse(model, io, input_types, Dynamic::Open).map_err(|e| format!("{e:#}"))?;
    let Err(symbolic) = analyse(model, io, input_types, Dynamic::Symbols) else {
        return Ok(());
    };
    analyse(model, io, input_types, Dynamic::Sample).map_err(|e| {
        format!(
            "{e:#} (analysed with batch size 1 and {SAMPLE_SIZE} for the other dynamic \
             dimensions, after failing with symbolic ones: {symbolic})"
        )
    })
}

fn analyse(
    model: &InferenceModel,
    io: &IoMap,
    input_types: &[DatumType],
    dynamic: Dynamic,
) -> tract_onnx::prelude::TractResult<()> {
    let mut model = model.clone();
    let batch = TDim::from(model.symbols.sym("batch_size"));
    for binding in io.inputs() {
        let facts: TVec<GenericFactoid<TDim>> = io
            .model_dims(binding)
            .iter()
            .enumerate()
            .map(|(axis, &d)| {
                let is_batch = axis == 0 && binding.batched;
                match (d, dynamic) {
                    (d, _) if d >= 0 => GenericFactoid::Only(TDim::from(d)),
                    (_, Dynamic::Open | Dynamic::Symbols) if is_batch => {
                        GenericFactoid::Only(batch.clone())
                    }
                    (_, Dynamic::Open) => GenericFactoid::Any,
                    (_, Dynamic::Symbols) => GenericFactoid::Only(TDim::from(
                        model.symbols.sym(&format!("{}_{axis}", binding.name)),
                    )),
                    (_, Dynamic::Sample) if is_batch => GenericFactoid::Only(TDim::from(1)),
                    (_, Dynamic::Sample) => GenericFactoid::Only(TDim::from(SAMPLE_SIZE)),
                }
            })
            .collect();
        model.set_input_fact(
            binding.model_index,
            InferenceFact::dt_shape(
                input_types[binding.model_index],
                ShapeFactoid::closed(facts),
            ),
        )?;
    }
    model.analyse(false)?;
    Ok(())
}
