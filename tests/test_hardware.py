import types

import pytest
import torch

from mlsafety import SetupError
from mlsafety.hardware import PROFILES, pick_device, pick_profile


def test_device_defaults_to_the_best_available(monkeypatch):
    monkeypatch.delenv("MLSAFETY_DEVICE", raising=False)
    expected = (
        "cuda"
        if torch.cuda.is_available()
        else "mps"
        if torch.backends.mps.is_available()
        else "cpu"
    )
    assert pick_device().type == expected


def test_device_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.delenv("MLSAFETY_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device().type == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device().type == "cuda"


def test_environment_overrides_the_device(monkeypatch):
    monkeypatch.setenv("MLSAFETY_DEVICE", "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device().type == "cpu"


def test_asking_for_an_absent_gpu_is_one_clear_line(monkeypatch):
    monkeypatch.setenv("MLSAFETY_DEVICE", "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SetupError, match="asks for CUDA but torch sees no GPU") as err:
        pick_device()
    assert "\n" not in str(err.value)
    monkeypatch.setenv("MLSAFETY_DEVICE", "tpu9")
    with pytest.raises(SetupError, match="not a device name"):
        pick_device()


def test_profile_follows_the_device_and_the_environment(monkeypatch):
    monkeypatch.delenv("MLSAFETY_PROFILE", raising=False)
    assert pick_profile(device=types.SimpleNamespace(type="cuda")).name == "gpu"
    assert pick_profile(device=torch.device("cpu")).name == "cpu"
    assert pick_profile(device=types.SimpleNamespace(type="mps")).name == "cpu"
    monkeypatch.setenv("MLSAFETY_PROFILE", "smoke")
    assert pick_profile(device=types.SimpleNamespace(type="cuda")).name == "smoke"
    monkeypatch.setenv("MLSAFETY_PROFILE", "huge")
    with pytest.raises(SetupError, match="unknown profile 'huge'; choose one of: smoke, cpu, gpu"):
        pick_profile()


def test_profiles_grow_from_smoke_to_gpu():
    smoke, cpu, gpu = PROFILES["smoke"], PROFILES["cpu"], PROFILES["gpu"]
    assert smoke.dataset == "digits"  # the only profile that runs offline
    assert smoke.train_examples < cpu.train_examples < gpu.train_examples
    assert smoke.budget_seconds == 60 and cpu.budget_seconds == 300 and gpu.budget_seconds == 120
    with pytest.raises(AttributeError):
        smoke.epochs = 100  # frozen: nobody edits a shared budget by accident


INTEL = "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nflags\t\t: fpu sse2\n"
APPLE = "processor\t: 0\nBogoMIPS\t: 48.00\nFeatures\t: fp asimd\nCPU implementer\t: 0x61\n"


@pytest.mark.parametrize(
    ("machine", "cpuinfo", "emulated"),
    [
        ("x86_64", INTEL, False),
        ("aarch64", APPLE, False),
        ("x86_64", APPLE, True),  # the amd64 image on Apple Silicon (QEMU or Rosetta)
        ("aarch64", INTEL, True),  # the arm64 image under QEMU on an Intel machine
    ],
)
def test_doctor_reports_the_architecture_and_warns_under_emulation(
    machine, cpuinfo, emulated, monkeypatch
):
    from mlsafety import doctor

    monkeypatch.setattr(doctor.platform, "machine", lambda: machine)
    report = doctor.Report()
    doctor._check_architecture(report, cpuinfo, emulated="")
    line = dict(report.lines)["architecture"]
    userland = doctor.ARCHITECTURES[machine]
    processor = doctor.processor_architecture(cpuinfo)
    assert line.startswith(f"{userland} (Python runs as {machine}), {processor} processor"), line
    warned = [w for w in report.warnings if "under emulation" in w]
    assert bool(warned) == emulated, report.warnings
    if emulated:
        assert len(warned) == 1 and "\n" not in warned[0]
        assert f"{userland} code running under emulation on an {processor} processor" in warned[0]


QEMU_CPUINFO = (
    "processor\t: 0\nmodel name\t: ARMv8 Processor rev 0 (v8l)\nCPU implementer\t: 0x00\n"
)


def test_doctor_sees_qemu_although_it_shows_an_arm64_cpuinfo(tmp_path, monkeypatch):
    """QEMU 8 and newer give the code they run an arm64 /proc/cpuinfo; the
    container's init (PID 1) is still QEMU's executable."""
    import os

    from mlsafety import doctor

    for pid, exe in (("1", "/usr/bin/qemu-aarch64"), (str(os.getppid()), "/usr/bin/tini")):
        (tmp_path / pid).mkdir(exist_ok=True)
        (tmp_path / pid / "exe").symlink_to(exe)
    assert doctor.emulator(str(tmp_path)) == "QEMU"
    (tmp_path / "1" / "exe").unlink()
    (tmp_path / "1" / "exe").symlink_to("/usr/bin/tini")
    assert doctor.emulator(str(tmp_path)) is None
    assert doctor.emulator(str(tmp_path / "missing")) is None

    monkeypatch.setattr(doctor.platform, "machine", lambda: "aarch64")
    report = doctor.Report()
    doctor._check_architecture(report, QEMU_CPUINFO, emulated="QEMU")
    assert dict(report.lines)["architecture"] == "arm64 (Python runs as aarch64), under QEMU"
    (warning,) = report.warnings
    assert "this is arm64 code running under emulation (QEMU) on another processor" in warning
    assert "\n" not in warning


def test_the_processor_architecture_is_unknown_without_a_cpuinfo_it_can_read():
    from mlsafety.doctor import processor_architecture

    assert processor_architecture("") is None
    assert processor_architecture("model name : something else\n") is None
    assert processor_architecture() in {"amd64", "arm64", None}  # this machine's


def test_notebooks_leave_one_core_to_the_neighbours(monkeypatch):
    from mlsafety import hardware

    monkeypatch.delenv("MLSAFETY_THREADS", raising=False)
    for cores, threads in ((1, 1), (2, 1), (4, 3), (16, 15)):
        monkeypatch.setattr(hardware, "usable_cores", lambda cores=cores: cores)
        assert hardware.torch_threads() == threads
    monkeypatch.setenv("MLSAFETY_THREADS", "2")
    assert hardware.torch_threads() == 2


@pytest.mark.parametrize("value", ["0", "two", "-1", "1.5"])
def test_a_bad_thread_count_is_one_clear_line(monkeypatch, value):
    from mlsafety.hardware import torch_threads

    monkeypatch.setenv("MLSAFETY_THREADS", value)
    with pytest.raises(SetupError, match=f"MLSAFETY_THREADS={value!r} is not a number"):
        torch_threads()


def test_setup_sets_torch_threads_and_says_so(monkeypatch, capsys):
    from mlsafety.hardware import setup

    before = torch.get_num_threads()
    monkeypatch.setenv("MLSAFETY_THREADS", "1")
    monkeypatch.setenv("MLSAFETY_DEVICE", "cpu")
    try:
        setup(seed=0)
        assert torch.get_num_threads() == 1
        assert "threads=1" in capsys.readouterr().out
    finally:
        torch.set_num_threads(before)
