//! Erlang-C (M/M/c) formulas: the analytic oracle for the pool model.
//!
//! With Poisson arrivals (rate λ), exponential service (rate μ per server) and c servers,
//! offered load a = λ/μ and utilisation ρ = a/c < 1:
//!
//! ```text
//! C(c, a) = [aᶜ/c! · c/(c−a)] / [Σ_{k<c} aᵏ/k! + aᶜ/c! · c/(c−a)]   P(wait > 0)
//! E[Wq]   = C(c, a) / (cμ − λ)                                          mean wait
//! P(Wq > t) = C(c, a) · e^{−(cμ−λ)t}
//! ```
//! Terms are built by a running product (no factorial overflow for c up to the pool maximum).

/// P(an arrival waits) for `servers` servers at offered load `a` (requires a < servers).
pub fn erlang_c(servers: u32, a: f64) -> f64 {
    assert!(servers >= 1, "at least one server");
    assert!(a >= 0.0 && a < servers as f64, "offered load {a} must be below {servers}");
    let c = servers as f64;
    let mut term = 1.0; // a^k / k!
    let mut sum = 0.0;
    for k in 0..servers {
        sum += term;
        term *= a / (k as f64 + 1.0);
    }
    let top = term * c / (c - a);
    top / (sum + top)
}

/// Mean queueing wait, in the unit of 1/λ.
pub fn mean_wait(servers: u32, arrival_rate: f64, service_rate: f64) -> f64 {
    let a = arrival_rate / service_rate;
    erlang_c(servers, a) / (servers as f64 * service_rate - arrival_rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // M/M/1: C = ρ.
        assert!((erlang_c(1, 0.5) - 0.5).abs() < 1e-12);
        // Textbook: c = 2, a = 1 → C = 1/3.
        assert!((erlang_c(2, 1.0) - 1.0 / 3.0).abs() < 1e-12);
        // c = 4, a = 3 → 0.5094 (tables).
        assert!((erlang_c(4, 3.0) - 0.5094).abs() < 1e-4);
        // M/M/1 mean wait: ρ / (μ − λ).
        assert!((mean_wait(1, 0.5, 1.0) - 1.0).abs() < 1e-12);
    }
}
