"""Synthetic network-flow records for week 8 (ML for cyberdefence).

Nothing here downloads anything. :func:`generate` draws flow records from a
seed: one row per flow (a connection, or a burst of connections from one
source, summarised), with the heavy-tailed features that real flow logs
(NetFlow, Zeek conn.log) have: a few huge transfers among many small ones.

Normal traffic is a mixture of three services:

- **web**: a short request, a larger response (``bytes_received`` well above
  ``bytes_sent``), to one or a few hosts (a page and its CDN);
- **dns**: tiny, fast, one packet each way;
- **upload** (mail, backups, file sharing): ``bytes_sent`` above
  ``bytes_received``, sometimes large.

Attacks come in three kinds, each unusual in a different way:

- ``port_scan``: one source probes many ports (a handful to a few hundred) with a
  packet or two each: tiny bytes, many distinct ports;
- ``exfiltration``: a long, throttled upload of megabytes to one host with
  almost nothing coming back. Each feature alone stays within what large normal
  uploads reach; the *combination* (a large upload, slow, with nearly silent replies)
  is what is rare;
- ``dos``: a flood of small packets at one host and port: very many packets
  for their bytes, little coming back.

Every number comes from ``numpy.random.default_rng(seed)``: the same seed gives
the same records on every machine, and the global generators are not touched.
The records are a teaching stand-in for real flow logs such as CIC-IDS2017 or
UNSW-NB15 (not fetched here), with attacks planted so that detection can be
measured exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FEATURES = (
    "duration",  # seconds
    "bytes_sent",  # from the source, payload and headers
    "bytes_received",
    "packets",  # both directions
    "distinct_ports",  # destination ports contacted
    "distinct_hosts",  # destination hosts contacted
)
ATTACKS = ("port_scan", "exfiltration", "dos")
# Shares of the normal services; the kinds are named in Flows.kinds.
SERVICES = {"web": 0.6, "dns": 0.25, "upload": 0.15}


@dataclass(frozen=True)
class Flows:
    """Flow records with labels.

    Attributes:
        features: ``(N, len(FEATURES))`` float64, non-negative, one row per
            flow; the columns are named in ``feature_names``.
        labels: ``(N,)`` int64, 1 = attack, 0 = normal.
        kinds: ``(N,)`` str: ``"web"``, ``"dns"`` or ``"upload"`` for normal
            flows, the attack kind (one of ``ATTACKS``) for attacks.
        feature_names: ``FEATURES``.
    """

    features: np.ndarray
    labels: np.ndarray
    kinds: np.ndarray
    feature_names: tuple[str, ...] = FEATURES

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, mask) -> Flows:
        """The flows selected by a boolean mask or an index array."""
        return Flows(self.features[mask], self.labels[mask], self.kinds[mask], self.feature_names)


def _lognormal(rng: np.random.Generator, median: float, sigma: float, n: int) -> np.ndarray:
    return median * np.exp(sigma * rng.standard_normal(n))


def _normal(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` normal flows: features and service names."""
    names = np.array(list(SERVICES))
    kinds = names[rng.choice(len(names), size=n, p=list(SERVICES.values()))]
    x = np.zeros((n, len(FEATURES)))
    for kind in SERVICES:
        rows = np.flatnonzero(kinds == kind)
        m = len(rows)
        if kind == "web":
            received = _lognormal(rng, 40_000, 1.5, m)
            sent = 400 + received * _lognormal(rng, 0.03, 0.6, m)
            duration = _lognormal(rng, 1.5, 1.0, m)
            hosts = 1 + rng.poisson(1.0, m)
            ports = 1 + rng.binomial(1, 0.2, m)
        elif kind == "dns":
            sent = _lognormal(rng, 70, 0.2, m)
            received = _lognormal(rng, 180, 0.4, m)
            duration = _lognormal(rng, 0.03, 0.6, m)
            hosts = np.ones(m)
            ports = np.ones(m)
        else:  # upload
            sent = _lognormal(rng, 300_000, 1.6, m)
            received = 300 + sent * _lognormal(rng, 0.02, 0.5, m)
            # a link of about 1-20 MB/s, plus the handshake
            duration = 0.2 + sent / _lognormal(rng, 4e6, 0.8, m)
            hosts = np.ones(m)
            ports = np.ones(m)
        packet_size = _lognormal(rng, 700, 0.3, m)  # mean bytes per packet, both ways
        packets = np.ceil((sent + received) / packet_size) + 2
        x[rows] = np.stack([duration, sent, received, packets, ports, hosts], axis=1)
    return x, kinds


def _attack(rng: np.random.Generator, kind: str, m: int) -> np.ndarray:
    """``m`` flows of one attack kind."""
    if kind == "port_scan":
        ports = np.round(np.exp(rng.uniform(np.log(8), np.log(300), m)))
        packets = np.round(ports * rng.uniform(1.0, 2.0, m))
        sent = packets * _lognormal(rng, 60, 0.1, m)
        received = packets * _lognormal(rng, 30, 0.5, m)  # a few resets and banners
        duration = ports * _lognormal(rng, 0.05, 0.8, m)
        hosts = 1 + rng.binomial(1, 0.3, m) * rng.integers(1, 5, m)
    elif kind == "exfiltration":
        sent = _lognormal(rng, 1.5e6, 0.8, m)
        received = 200 + sent * _lognormal(rng, 0.004, 0.6, m)  # acknowledgements only
        duration = sent / _lognormal(rng, 200_000, 0.6, m)  # throttled to stay quiet
        packets = np.ceil(sent / _lognormal(rng, 1_200, 0.1, m))
        ports = np.ones(m)
        hosts = np.ones(m)
    elif kind == "dos":
        packets = np.round(_lognormal(rng, 3_000, 0.8, m))
        sent = packets * _lognormal(rng, 90, 0.3, m)
        received = _lognormal(rng, 2_000, 1.0, m)
        duration = _lognormal(rng, 10, 0.6, m)
        ports = np.ones(m)
        hosts = np.ones(m)
    else:
        raise ValueError(f"unknown attack kind {kind!r}; choose from {ATTACKS}")
    return np.stack([duration, sent, received, packets, ports, hosts], axis=1)


def generate(n_normal: int, n_attacks: int = 0, *, seed: int, attacks=ATTACKS) -> Flows:
    """Draw ``n_normal`` normal flows and ``n_attacks`` attack flows, shuffled.

    The attacks are split as evenly as possible between the kinds in
    ``attacks`` (the first kinds get one more when it does not divide). Counts
    (bytes, packets, ports, hosts) are whole numbers, stored as float64.

    Args:
        n_normal: number of normal flows, ``>= 0``.
        n_attacks: number of attack flows, ``>= 0``.
        seed: seed of ``numpy.random.default_rng``; the only source of randomness.
        attacks: the attack kinds to draw, a subset of ``ATTACKS``.

    Returns:
        :class:`Flows` with ``n_normal + n_attacks`` rows in random order.
    """
    if n_normal < 0 or n_attacks < 0:
        raise ValueError(f"counts must be >= 0, got n_normal={n_normal}, n_attacks={n_attacks}")
    attacks = tuple(attacks)
    unknown = set(attacks) - set(ATTACKS)
    if unknown or (n_attacks and not attacks):
        raise ValueError(f"attacks must be a non-empty subset of {ATTACKS}, got {attacks}")
    rng = np.random.default_rng(seed)
    x, kinds = _normal(rng, int(n_normal))
    parts, names = [x], [kinds]
    for i, kind in enumerate(attacks):
        m = n_attacks // len(attacks) + (i < n_attacks % len(attacks))
        parts.append(_attack(rng, kind, m))
        names.append(np.full(m, kind))
    features = np.round(np.concatenate(parts))
    # durations keep their decimals (milliseconds); the counts are integers
    features[:, 0] = np.round(np.concatenate([p[:, 0] for p in parts]), 3)
    kinds = np.concatenate(names).astype(str)
    labels = (~np.isin(kinds, list(SERVICES))).astype(np.int64)
    order = rng.permutation(len(labels))
    return Flows(features[order], labels[order], kinds[order])
