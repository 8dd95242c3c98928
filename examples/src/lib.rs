//! What the example binaries share: choosing a cell's ports from the environment.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `PARACELL_STORE` | `memory` | `memory` |
//! | `PARACELL_DETERMINISTIC` | `1`: stepping clock and sequential ids, for conformance runs against the binaries only | unset |

use paracell_domain::{Cell, CellConfig};

/// Builds the cell the environment asks for.
///
/// ```
/// use paracell_domain::{CellConfig, TenantScope};
/// let cell = paracell_examples::cell_from_env(CellConfig::new("cell-a", TenantScope::All).unwrap());
/// assert_eq!(cell.config().cell_id.as_str(), "cell-a");
/// ```
pub fn cell_from_env(config: CellConfig) -> Cell {
    if std::env::var("PARACELL_DETERMINISTIC").is_ok_and(|v| v == "1") {
        eprintln!(
            "WARNING: PARACELL_DETERMINISTIC=1: fixed clock and sequential ids (conformance runs only)"
        );
        return paracell_domain::memory::deterministic(config).0;
    }
    Cell::in_memory(config)
}
