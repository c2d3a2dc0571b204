//! Engine tests on scripted time, one per clause of SPEC §3, plus rules
//! check tests, reload / journal / restore tests and property tests.

mod backtest;
mod check;
mod holds;
mod learned;
mod lifecycle;
mod props;
mod reload;
mod script;
