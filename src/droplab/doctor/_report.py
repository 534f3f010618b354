"""What the doctor hands back: findings (one line each, ranked) and the measurements behind them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Finding", "Report", "SEVERITIES"]

#: severity names, most severe first. "error": training or prediction is silently wrong;
#: "warning": it works but against dropout's contract or a known pitfall (a shift in statistics,
#: a wasted cast); "note": worth knowing, nothing wrong.
SEVERITIES = ("error", "warning", "note")


@dataclass
class Finding:
    """One thing wrong: ``what`` (plain words), ``measured`` against ``expected``, and ``fix``.

    ``code`` is a stable short name (``"randn-mask"``, ``"keep-drop-mixup"``, ``"eval-random"``,
    ...); ``bug`` names the known bug the measurement matches, when one does; ``where`` says
    where it was seen (``"p=0.5"``, a module path such as ``"encoder.layers.0.ff"``).
    """

    code: str
    severity: str
    where: str
    what: str
    measured: str = ""
    expected: str = ""
    fix: str = ""
    bug: str = ""

    def line(self) -> str:
        """The finding as one line: what is wrong, measured against expected, and the fix."""
        text = f"[{self.severity}] {self.where}: {self.what}" if self.where else f"[{self.severity}] {self.what}"
        if self.measured or self.expected:
            text += f" (measured {self.measured or '?'}; expected {self.expected or '?'})"
        if self.fix:
            text += f". Fix: {self.fix}"
        return text if text.endswith(".") else text + "."

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Report:
    """The doctor's answer for one subject (an implementation or a model).

    Attributes:
        subject: what was examined (its name).
        mode: ``"impl"`` or ``"model"``.
        findings: ranked, most severe first (see :data:`SEVERITIES`).
        checks: one record per check run: ``check``, ``where``, ``measured``, ``expected``, ``ok``.
        tests: how many statistical tests were run (each at 5 sigma).
        notes: plain sentences about what was and was not checked.
    """

    subject: str
    mode: str
    findings: list[Finding] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    tests: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing was found (notes aside)."""
        return not [f for f in self.findings if f.severity != "note"]

    @property
    def exit_code(self) -> int:
        """0 clean, 1 findings (the CLI's exit status)."""
        return 0 if self.ok else 1

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)

    def check(self, check: str, where: str, measured: Any, expected: Any, ok: bool, **extra: Any) -> bool:
        """Record one check's measurement; returns ``ok``."""
        self.checks.append({"check": check, "where": where, "measured": measured, "expected": expected,
                            "ok": bool(ok), **extra})
        return bool(ok)

    def ranked(self) -> list[Finding]:
        order = {s: i for i, s in enumerate(SEVERITIES)}
        return sorted(self.findings, key=lambda f: order.get(f.severity, len(order)))

    def codes(self) -> list[str]:
        return [f.code for f in self.ranked()]

    def lines(self) -> list[str]:
        return [f.line() for f in self.ranked()]

    def to_dict(self) -> dict[str, Any]:
        from droplab.doctor._stats import TAIL, false_alarm

        return {"subject": self.subject, "mode": self.mode, "ok": self.ok,
                "findings": [f.to_dict() for f in self.ranked()], "checks": self.checks,
                "statistical_tests": self.tests, "false_alarm_per_test": TAIL,
                "false_alarm_bound": false_alarm(self.tests), "notes": self.notes}

    def __str__(self) -> str:
        head = f"droplab doctor {self.mode} {self.subject}: " + (
            "no findings" if self.ok else f"{len([f for f in self.findings if f.severity != 'note'])} finding(s)")
        return "\n".join([head] + self.lines())
