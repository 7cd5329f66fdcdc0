//! Mean-field games and mean-field control with OT-Flow's potential: [`costs`] holds the
//! interaction and terminal functionals, [`game`] the model, its characteristics and its costs.

pub mod costs;
pub mod game;

pub use costs::{Gaussian, Interaction, Obstacle, Terminal};
pub use game::{MeanFieldGame, MfgConfig, MfgCosts, MfgState, MfgWeights};
