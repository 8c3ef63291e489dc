//! (being written; see docs/engine.md)
