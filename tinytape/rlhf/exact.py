"""Exact quantities over the enumerated response space, and KL estimators.

Every policy here is a table of log pi(y | x): one row per prompt, one column per response
(see policy.exact_logprobs). With tables, expectations are sums, not sample means:

- KL(pi || pi_SFT) = sum_y pi(y) (log pi(y) - log pi_SFT(y)), per prompt, then averaged;
- the win rate of pi against pi_SFT = P(r*(Y) > r*(Y')) + 1/2 P(r*(Y) = r*(Y')), with
  Y ~ pi and Y' ~ pi_SFT independent (ties split);
- the best KL-regularized policy for a reward r and coefficient beta,
      pi*_beta(y | x) = pi_SFT(y | x) exp(r(x, y) / beta) / Z(x),
  which maximizes E_pi[r] - beta KL(pi || pi_SFT), with maximum beta log Z(x).

Sample-based KL estimators (Schulman, "Approximating KL divergence"), samples x ~ p and
ratio = q(x) / p(x):  k1 = -log ratio (unbiased, can be negative),
k2 = (log ratio)^2 / 2 (biased, low variance), k3 = (ratio - 1) - log ratio (unbiased, >= 0).
"""

from __future__ import annotations

import numpy as np

from ..numeric import log_softmax


def kl_estimators(logp: np.ndarray, logq: np.ndarray) -> dict[str, np.ndarray]:
    """k1, k2, k3 estimates of KL(p || q) at samples x ~ p, given log p(x) and log q(x)."""
    log_ratio = np.asarray(logq, np.float64) - np.asarray(logp, np.float64)
    return {"k1": -log_ratio, "k2": 0.5 * log_ratio ** 2,
            "k3": np.expm1(log_ratio) - log_ratio}


def exact_kl(logp: np.ndarray, logq: np.ndarray) -> np.ndarray:
    """KL(p || q) per row of log-probability tables (0 * log 0 counts as 0)."""
    p = np.exp(logp)
    diff = np.where(p > 0, logp - logq, 0.0)
    return (p * diff).sum(axis=-1)


def win_rate(logp: np.ndarray, logp_base: np.ndarray, true_table: np.ndarray) -> np.ndarray:
    """Per prompt: P(r*(Y) > r*(Y')) + 0.5 P(r*(Y) = r*(Y')), Y ~ p, Y' ~ base."""
    p, q = np.exp(logp), np.exp(logp_base)
    out = np.empty(len(p))
    for i in range(len(p)):
        order = np.argsort(true_table[i], kind="stable")
        vals, cq = true_table[i][order], np.concatenate([[0.0], np.cumsum(q[i][order])])
        below = cq[np.searchsorted(vals, true_table[i], side="left")]
        upto = cq[np.searchsorted(vals, true_table[i], side="right")]
        out[i] = (p[i] * (below + 0.5 * (upto - below))).sum()
    return out


def optimal_logp(logp_ref: np.ndarray, reward: np.ndarray, beta: float) -> np.ndarray:
    """log pi*_beta = log softmax(log pi_ref + r / beta) per prompt; beta = 0 is the argmax
    of r (ties shared in proportion to pi_ref)."""
    if beta > 0:
        return log_softmax(logp_ref + reward / beta)
    best = reward >= reward.max(axis=-1, keepdims=True) - 1e-12
    return log_softmax(np.where(best, logp_ref, -np.inf))


def optimal_objective(logp_ref: np.ndarray, reward: np.ndarray, beta: float) -> float:
    """max_pi E_pi[r] - beta KL(pi || pi_ref) = mean over prompts of beta log Z(x)."""
    if beta <= 0:
        return float(reward.max(axis=-1).mean())
    a = logp_ref + reward / beta
    m = a.max(axis=-1)
    return float((beta * (m + np.log(np.exp(a - m[:, None]).sum(axis=-1)))).mean())


def summarize(logp: np.ndarray, logp_ref: np.ndarray, rm_table: np.ndarray,
              true_table: np.ndarray, beta: float | None = None) -> dict[str, float]:
    """Exact mean KL to the reference, E[r_RM], E[r*], win rate against the reference, and
    (given beta) the KL-regularized objective E[r_RM] - beta KL."""
    p = np.exp(logp)
    out = {"kl": float(exact_kl(logp, logp_ref).mean()),
           "rm": float((p * rm_table).sum(axis=-1).mean()),
           "true": float((p * true_table).sum(axis=-1).mean()),
           "win": float(win_rate(logp, logp_ref, true_table).mean()),
           "entropy": float(-(p * np.where(p > 0, logp, 0.0)).sum(axis=-1).mean())}
    if beta is not None:
        out["objective"] = out["rm"] - beta * out["kl"]
    return out


def frontier(logp_ref: np.ndarray, rm_table: np.ndarray, true_table: np.ndarray,
             betas: np.ndarray) -> list[dict[str, float]]:
    """summarize() of pi*_beta for each beta: the best reachable E[r_RM] at each KL, and the
    true reward and win rate that come with it."""
    rows = []
    for beta in betas:
        row = summarize(optimal_logp(logp_ref, rm_table, float(beta)), logp_ref, rm_table,
                        true_table, float(beta))
        row["beta"] = float(beta)
        rows.append(row)
    return rows


# ---------------------------------------------------------------- best-of-n
def best_of_n_kl_bound(n: int) -> float:
    """log n - (n - 1) / n: the usual closed form of KL(best-of-n || pi_ref). It is exact
    when the reference has no atoms, an upper bound otherwise (Beirami et al. 2024): here
    the responses are discrete, so the exact KL of best_of_n_logp is at most this."""
    if n < 1:
        raise ValueError(f"best-of-n needs n >= 1, got {n}")
    return float(np.log(n) - (n - 1) / n)


def best_of_n_logp(logp_ref: np.ndarray, proxy: np.ndarray, n: int) -> np.ndarray:
    """log P(Y = y) per prompt when Y is the sample with the highest proxy reward among n
    independent samples of pi_ref (rows: prompts, columns: responses).

    With responses sorted by proxy reward and F the reference's cumulative probability,
    P(best = y) = F(y)^n - F(y^-)^n; responses with equal proxy reward share that mass in
    proportion to their reference probability (a tie is broken uniformly among the tied
    samples)."""
    if n < 1:
        raise ValueError(f"best-of-n needs n >= 1, got {n}")
    if logp_ref.shape != proxy.shape:
        raise ValueError(f"best_of_n_logp: log pi_ref {logp_ref.shape} and proxy rewards "
                         f"{proxy.shape} must have the same shape")
    out = np.empty_like(logp_ref, dtype=np.float64)
    for i in range(len(logp_ref)):
        p = np.exp(logp_ref[i] - logp_ref[i].max())
        p /= p.sum()
        order = np.argsort(proxy[i], kind="stable")
        vals, ps = proxy[i][order], p[order]
        # group equal proxy values: mass of the group = F(top)^n - F(below)^n
        starts = np.flatnonzero(np.r_[True, vals[1:] != vals[:-1]])
        group_mass = np.add.reduceat(ps, starts)
        upper = np.minimum(np.cumsum(group_mass), 1.0)
        lower = upper - group_mass
        best_mass = upper ** n - np.clip(lower, 0.0, 1.0) ** n
        group = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(vals)]))
        share = np.where(group_mass[group] > 0, ps / np.where(group_mass[group] > 0,
                                                               group_mass[group], 1.0), 0.0)
        q = np.empty(len(vals))
        q[order] = best_mass[group] * share
        with np.errstate(divide="ignore"):
            out[i] = np.log(q)
    return out


# ---------------------------------------------------------------- the optimum at a given KL
def optimum_at_kl(logp_ref: np.ndarray, reward: np.ndarray, kl: float,
                  tol: float = 1e-6) -> dict[str, float]:
    """summarize() of the exact optimum pi*_beta for `reward` whose mean KL to the reference
    is `kl` (beta by bisection in log beta: the KL falls as beta grows). At a KL beyond the
    beta -> 0 limit (the argmax), that limit. The reward's true-reward etc. are not
    computed here: the returned dict has "beta", "kl" and "logp"."""
    kl_max = float(exact_kl(optimal_logp(logp_ref, reward, 0.0), logp_ref).mean())
    if kl >= kl_max:
        return {"beta": 0.0, "kl": kl_max, "logp": optimal_logp(logp_ref, reward, 0.0)}
    if kl <= 0:
        return {"beta": float("inf"), "kl": 0.0, "logp": logp_ref}
    lo, hi = -12.0, 12.0  # log beta: KL(lo) > kl > KL(hi)
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        k = float(exact_kl(optimal_logp(logp_ref, reward, float(np.exp(mid))), logp_ref).mean())
        if abs(k - kl) < tol:
            break
        lo, hi = (mid, hi) if k > kl else (lo, mid)
    beta = float(np.exp(mid))
    logp = optimal_logp(logp_ref, reward, beta)
    return {"beta": beta, "kl": float(exact_kl(logp, logp_ref).mean()), "logp": logp}
