"""Training diagnostics: signs that a GAN run has gone wrong, each with a suggestion.

Computed from what the loop already has (the logged loss means) or from the fixed sample batch
(a forward pass of the trained generators in eval mode, no gradients, every ``--health-every``
steps); nothing is added to the training step. A finding is reported once when it starts (its
condition held at ``CONSECUTIVE`` checks in a row) and once when it ends (it did not hold at
``CONSECUTIVE`` checks in a row). docs/health.md explains each and how the thresholds were chosen.

Image distances are measured with images in [0, 1]: MAD is the mean absolute difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from ..metrics import ssim
from .pipeline import data_kind


CHECK_IMAGES = 2  # images of the sample batch each check translates (the cost: 2 generator forwards)


@dataclass(frozen=True)
class Thresholds:
    """When a finding's condition holds (see docs/health.md)."""

    d_loss: float = 0.02  # discriminator domination: every discriminator loss mean below this
    identity_mad: float = 0.04  # no translation: MAD(input, output) below this...
    identity_ssim: float = 0.85  # ...and SSIM(input, output) above this
    collapse_ratio: float = 0.05  # collapse: outputs differ less than this fraction of how much inputs differ...
    collapse_mad: float = 0.02  # ...and less than this MAD
    flat_mad: float = 0.0005  # flat generator: outputs changed less than this MAD since the previous check
    flat_min_lr: float = 0.1  # ...while the learning rate is at least this fraction of its initial value
    consecutive: int = 3  # checks in a row that start (or end) a finding


SUGGESTIONS = {
    "discriminator_domination": (
        "the discriminator separates real from fake almost perfectly, so the generator gets little signal; try "
        "--gan-mode lsgan, a smaller discriminator (--n-layers-D, --ndf), fewer discriminator updates or a lower "
        "learning rate for it, more data or augmentation"),
    "generator_collapse": (
        "the generator gives nearly the same output for different inputs (mode collapse); try a lower --lr, "
        "--gan-mode lsgan, a larger reconstruction weight (--lambda-l1, --lambda-a/--lambda-b, --lambda-nce), or "
        "restart from an earlier checkpoint"),
    "no_translation": (
        "the generator returns its input nearly unchanged; lower the identity weight (--lambda-identity for "
        "CycleGAN, --no-nce-idt for CUT), raise the adversarial signal, and check that the two domains differ"),
    "flat_generator": (
        "the generator's outputs have stopped changing although the learning rate is not small; check --lr, "
        "look for a saturated output (tanh at +-1) or dead discriminator (see the losses), or stop the run here"),
}

LABELS = {"discriminator_domination": "discriminator domination", "generator_collapse": "generator collapse",
          "no_translation": "no translation", "flat_generator": "flat generator"}


def mad(x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean absolute difference of two batches in [-1, 1], in [0, 1] units."""
    return float((x.float() - y.float()).abs().mean()) / 2


def pairwise_mad(x: torch.Tensor) -> float:
    """Mean MAD between the different images of a batch (B >= 2), in [0, 1] units."""
    flat = x.float().flatten(1)
    b = flat.shape[0]
    dists = [(flat[i] - flat[j]).abs().mean() for i in range(b) for j in range(i + 1, b)]
    return float(torch.stack(dists).mean()) / 2


class Diagnostics:
    """Keeps the state of every finding over the checks; returns events for the loop to report.

    Args:
        unpaired: whether the method is unpaired (only then is "no translation" a finding).
        gan_mode: the adversarial loss (discriminator domination is not judged for wgan-gp).
        thresholds: see :class:`Thresholds`.
    """

    def __init__(self, unpaired: bool, gan_mode: str, thresholds: Thresholds = Thresholds()):
        self.unpaired, self.gan_mode, self.t = unpaired, gan_mode, thresholds
        self.streak: Dict[str, int] = {}  # name -> checks in a row agreeing with the opposite of its state
        self.active: Dict[str, int] = {}  # name -> step it started at
        self.previous: Optional[List[torch.Tensor]] = None  # outputs at the previous sample check
        self.values: Dict[str, float] = {}  # what the last sample check measured

    def _judge(self, name: str, step: int, holds: bool, values: Dict[str, float]) -> Optional[Dict]:
        """Update one finding; an event dict when it starts or ends."""
        changing = holds != (name in self.active)
        self.streak[name] = self.streak.get(name, 0) + 1 if changing else 0
        if self.streak[name] < self.t.consecutive:
            return None
        self.streak[name] = 0
        values = {k: round(v, 5) for k, v in values.items()}
        if holds:
            self.active[name] = step
            return {"step": step, "event": "health_start", "diagnostic": name, "values": values,
                    "message": f"{LABELS[name]} ({_fmt(values)}): {SUGGESTIONS[name]}"}
        start = self.active.pop(name)
        return {"step": step, "event": "health_end", "diagnostic": name, "since": start, "values": values,
                "message": f"{LABELS[name]} is over (it started at step {start}; {_fmt(values)})"}

    def on_losses(self, step: int, record: Dict) -> List[Dict]:
        """Judge the loss means of a log line (keys ``d_*`` are discriminator losses)."""
        d_losses = {k: v for k, v in record.items() if k.startswith("d_") and isinstance(v, float)}
        if not d_losses or self.gan_mode == "wgan-gp":
            return []
        holds = max(d_losses.values()) < self.t.d_loss
        event = self._judge("discriminator_domination", step, holds, d_losses)
        return [event] if event else []

    def on_samples(self, step: int, pairs: Sequence[Tuple[torch.Tensor, torch.Tensor]], lr_factor: float,
                   references: Optional[Sequence[Tuple[torch.Tensor, torch.Tensor]]] = None) -> List[Dict]:
        """Judge the generators' outputs on the sample batch: ``pairs`` of (inputs, outputs), each
        (B, C, H, W) in [-1, 1]; ``lr_factor`` is the current over the initial learning rate;
        ``references`` (unpaired methods), one per pair: the same generator's (inputs, outputs) on
        images of its output domain. The values measured are kept in ``self.values``."""
        events = []
        self.values = {}
        outputs = [y for _x, y in pairs]
        if self.unpaired:
            events.append(self._no_translation(step, pairs, references))
        if all(y.shape[0] >= 2 for y in outputs):
            ratios = [(pairwise_mad(y), pairwise_mad(x)) for x, y in pairs]
            out_d, in_d = min(ratios)
            holds = out_d < self.t.collapse_mad and out_d < self.t.collapse_ratio * max(in_d, 1e-8)
            self.values.update(output_spread=out_d, input_spread=in_d)
            events.append(self._judge("generator_collapse", step, holds, {"output_spread": out_d,
                                                                          "input_spread": in_d}))
        if self.previous is not None:
            change = max(mad(a, b) for a, b in zip(self.previous, outputs))
            self.values["change"] = change
            if lr_factor >= self.t.flat_min_lr:
                events.append(self._judge("flat_generator", step, change < self.t.flat_mad, {"change": change}))
        self.previous = [y.detach().clone() for y in outputs]
        return [e for e in events if e]

    def _no_translation(self, step: int, pairs, references) -> Optional[Dict]:
        """The "no translation" finding over the generators whose output has their input's shape."""
        same = [(i, x, y) for i, (x, y) in enumerate(pairs) if x.shape == y.shape]
        if not same:
            return None
        values = {"mad": min(mad(x, y) for _i, x, y in same)}
        if min(same[0][1].shape[-2:]) >= 11:
            values["ssim"] = max(float(ssim(x, y).mean()) for _i, x, y in same)
        if references:
            values["idt_mad"] = min(mad(*references[i]) for i, _x, _y in same)
        self.values.update(values)
        holds = values["mad"] < self.t.identity_mad and values.get("ssim", 1.0) > self.t.identity_ssim
        return self._judge("no_translation", step, holds, values)


def _fmt(values: Dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.3g}" for k, v in values.items())


@torch.no_grad()
def generator_pairs(method, fixed: Dict[str, torch.Tensor], amp, primary: str,
                    output_side: bool = False) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """(input, output) of every generator of ``method`` on the fixed batch.

    The generator of the run's direction ``primary`` (``data.generator_direction``) reads the
    batch's ``a`` side, the reverse one (CycleGAN) its ``b`` side; with ``output_side`` each reads
    the other side instead (images already in its output domain: how much it changes those is the
    scale "no translation" compares with). Each runs in eval mode (batch norm uses its running
    statistics, nothing is updated) and goes back to training mode.
    """
    pairs = []
    for direction, name in method.generators.items():
        net = method.nets[name]
        x = fixed["a" if (direction == primary) != output_side else "b"]
        net.eval()
        try:
            with amp:
                y = net(x)
        finally:
            net.train()
        pairs.append((x, y.float()))
    return pairs


class HealthReporter:
    """Runs :class:`Diagnostics` for the loop (main process) and reports its events: a line on the
    progress output, an ``event`` record in log.jsonl (which losses.png and ``translate info`` show).

    Args:
        method: the trained method (its ``generators`` and ``nets``).
        cfg: the run configuration (``loop.health_every``, ``loop.lr``, ``data.generator_direction``).
        log: the run's log.jsonl writer.
        say: prints one line without breaking the progress bar.
    """

    def __init__(self, method, cfg, log, say):
        self.method, self.cfg, self.log, self.say = method, cfg, log, say
        self.every = cfg.loop.health_every
        self.diagnostics = Diagnostics(unpaired=data_kind(cfg) == "unpaired",
                                       gan_mode=getattr(cfg.model, "gan_mode", ""))

    def losses(self, step: int, record: Dict) -> None:
        if self.every:
            self._report(self.diagnostics.on_losses(step, record))

    def samples(self, step: int, fixed: Dict[str, torch.Tensor], amp, lr: float) -> None:
        """Check the sample batch when ``step`` is due (every ``loop.health_every`` steps)."""
        if self.every and step % self.every == 0:
            self.check(step, fixed, amp, lr)

    def check(self, step: int, fixed: Dict[str, torch.Tensor], amp, lr: float) -> None:
        """One check of the sample batch (2 generator forwards per generator on unpaired data)."""
        few = {k: v[:CHECK_IMAGES] for k, v in fixed.items()}  # two images: collapse needs a pair, no more
        primary = self.cfg.data.generator_direction
        pairs = generator_pairs(self.method, few, amp, primary)
        references = None
        if self.diagnostics.unpaired and few.get("a") is not None and few.get("b") is not None \
                and few["a"].shape[1] == few["b"].shape[1]:
            references = generator_pairs(self.method, few, amp, primary, output_side=True)
        events = self.diagnostics.on_samples(step, pairs, lr / self.cfg.loop.lr if self.cfg.loop.lr else 1.0,
                                             references)
        self.log.write({"step": step, "event": "health_check",
                        "values": {k: round(v, 5) for k, v in self.diagnostics.values.items()}})
        self._report(events)

    def _report(self, events: List[Dict]) -> None:
        for event in events:
            self.log.write(event)
            self.say(f"step {event['step']}: {'health' if event['event'] == 'health_start' else 'health ok'}: "
                     f"{event['message']}")

    @property
    def active(self) -> List[str]:
        return sorted(self.diagnostics.active)


def health_summary(records: Sequence[Dict]) -> List[Dict]:
    """The findings of a run from its log.jsonl records: one entry per finding with ``diagnostic``,
    ``start``, ``end`` (None while it lasts) and the start ``message``; then the non-finite stop, if any."""
    out: List[Dict] = []
    open_: Dict[str, Dict] = {}
    for r in records:
        kind = r.get("event")
        if kind == "health_start":
            open_[r["diagnostic"]] = entry = {"diagnostic": r["diagnostic"], "start": r["step"], "end": None,
                                              "message": r.get("message", "")}
            out.append(entry)
        elif kind == "health_end" and r.get("diagnostic") in open_:
            open_.pop(r["diagnostic"])["end"] = r["step"]
        elif kind == "nonfinite_stop":
            out.append({"diagnostic": "nonfinite_stop", "start": r["step"], "end": r["step"],
                        "message": f"stopped: non-finite losses ({r.get('loss')}); restored step "
                                   f"{r.get('restored_step')}"})
    return out
