//! Genesys Cloud simulator.
