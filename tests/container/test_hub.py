"""A class on one hub, for real: `make hub`'s script starts JupyterHub (its own
image, DockerSpawner, NativeAuthenticator, configurable-http-proxy) serving the
lab image the container test built, and two students use it as a class would:
they sign up, are authorized by the facilitator, log in, get their own server,
run a week's self-check in it through the Jupyter API, keep their work across a
server restart, and cannot reach each other's server or the admin API."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid

import pytest
import requests

from .conftest import BASE_IMAGE, ROOT, compose_v2, free_port, record_timings, sh

pytestmark = pytest.mark.timeout(2700)

HUB_SCRIPT = ROOT / "deploy" / "jupyterhub" / "hub.sh"
ADMIN = "facilitator"
PASSWORD = "tr0ub4dor-class"
STUDENTS = ("alice", "bob")


def record(**timings: float) -> None:
    record_timings("hub", **timings)


class Hub:
    def __init__(self, image: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "COMPOSE": compose_v2(),
            "BASE_IMAGE": BASE_IMAGE,
            "MLSAFETY_HUB_IMAGE": image,
            "MLSAFETY_HUB_HUB_IMAGE": "mlsafety-hub-test:latest",
            "MLSAFETY_HUB_PORT": str(self.port),
            "MLSAFETY_HUB_ADMIN": ADMIN,
            "MLSAFETY_HUB_PROFILE": "smoke",
            "MLSAFETY_HUB_CPU_LIMIT": "1",
            "MLSAFETY_HUB_MEM_LIMIT": "2G",
            "MLSAFETY_HUB_WAIT": "300",
        }

    def script(self, *args: str, timeout: float = 1800, check: bool = True, **env: str):
        return sh([str(HUB_SCRIPT), *args], timeout=timeout, check=check, env={**self.env, **env})

    def remove_volumes(self) -> None:
        names = sh(["docker", "volume", "ls", "-q"], check=False).stdout.split()
        ours = [
            n for n in names if n.startswith("mlsafety-hub-user-") or n == "mlsafety-hub_hub-data"
        ]
        if ours:
            sh(["docker", "volume", "rm", "-f", *ours], check=False)


class Person:
    """One browser's session on the hub: cookies, the _xsrf token, and API calls."""

    def __init__(self, hub: Hub, name: str):
        self.hub, self.name = hub, name
        self.session = requests.Session()
        self.token: str | None = None

    def form(self, path: str, data: dict) -> requests.Response:
        self.session.get(f"{self.hub.url}/hub/{path}", timeout=30)
        data = {**data, "_xsrf": self.session.cookies.get("_xsrf", "")}
        return self.session.post(f"{self.hub.url}/hub/{path}", data=data, timeout=60)

    def signup(self, name: str | None = None) -> requests.Response:
        name = name or self.name
        return self.form(
            "signup",
            {
                "username": name,
                "signup_password": PASSWORD,
                "signup_password_confirmation": PASSWORD,
            },
        )

    def login(self) -> requests.Response:
        return self.form("login", {"username": self.name, "password": PASSWORD})

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"X-XSRFToken": self.session.cookies.get("_xsrf", "")}
        if self.token:
            headers = {"Authorization": f"token {self.token}"}
        return self.session.request(
            method, f"{self.hub.url}/hub/api/{path}", headers=headers, timeout=60, **kwargs
        )

    def server(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(
            method,
            f"{self.hub.url}/user/{self.name}/api/{path}",
            headers={"Authorization": f"token {self.token}"},
            timeout=60,
            **kwargs,
        )

    def new_token(self) -> None:
        reply = self.api("POST", f"users/{self.name}/tokens", json={"note": "class test"})
        assert reply.status_code in (200, 201), reply.text
        self.token = reply.json()["token"]

    def start(self) -> float:
        started = time.perf_counter()
        reply = self.api("POST", f"users/{self.name}/server")
        # logging in starts the server already (JupyterHub's default), or this does
        started_by_login = reply.status_code == 400 and "already" in reply.text
        assert reply.status_code in (201, 202) or started_by_login, (
            f"{self.name}: spawn refused: {reply.status_code} {reply.text}"
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            model = self.api("GET", f"users/{self.name}").json()
            server = model.get("servers", {}).get("")
            if server and server.get("ready"):
                return time.perf_counter() - started
            time.sleep(1)
        logs = sh(["docker", "logs", "mlsafety-hub"], check=False)
        pytest.fail(f"{self.name}'s server was not ready in 300 s:\n{logs.stderr[-4000:]}")

    def stop(self) -> None:
        reply = self.api("DELETE", f"users/{self.name}/server")
        assert reply.status_code in (202, 204), reply.text
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if not self.api("GET", f"users/{self.name}").json().get("servers"):
                return
            time.sleep(1)
        pytest.fail(f"{self.name}'s server did not stop within 120 s")

    def run_code(self, code: str, timeout: float = 600) -> str:
        """Execute code in a new kernel of the student's server, over its WebSocket."""
        import websocket

        kernel = self.server("POST", "kernels", json={}).json()["id"]
        ws = websocket.create_connection(
            f"ws://127.0.0.1:{self.hub.port}/user/{self.name}/api/kernels/{kernel}/channels",
            header=[f"Authorization: token {self.token}"],
            timeout=timeout,
        )
        msg_id = uuid.uuid4().hex
        printed: list[str] = []
        try:
            ws.send(
                json.dumps(
                    {
                        "header": {
                            "msg_id": msg_id,
                            "msg_type": "execute_request",
                            "username": self.name,
                            "session": uuid.uuid4().hex,
                            "version": "5.3",
                        },
                        "parent_header": {},
                        "metadata": {},
                        "channel": "shell",
                        "content": {"code": code, "silent": False, "allow_stdin": False},
                    }
                )
            )
            done = False
            while not done:
                msg = json.loads(ws.recv())
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                if msg["msg_type"] == "stream":
                    printed.append(msg["content"]["text"])
                elif msg["msg_type"] == "error":
                    pytest.fail("\n".join(msg["content"]["traceback"]))
                elif msg["msg_type"] == "execute_reply":
                    done = True
        finally:
            ws.close()
            self.server("DELETE", f"kernels/{kernel}")
        return "".join(printed)


def test_bad_input_to_make_hub_is_one_clear_line(cpu_image):
    """Before the class starts: each mistake is one line, and nothing starts."""
    import socket

    hub = Hub(cpu_image)
    missing = hub.script("up", check=False, MLSAFETY_HUB_IMAGE="mlsafety-no-such-image:cpu")
    assert missing.returncode == 2 and "is not on this machine" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1, missing.stderr
    no_docker = hub.script("up", check=False, DOCKER_HOST="unix:///nonexistent/docker.sock")
    assert no_docker.returncode == 2 and "Docker engine is not running" in no_docker.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        busy = hub.script("up", check=False, MLSAFETY_HUB_PORT=port)
    assert busy.returncode == 2 and f"port {port} is in use" in busy.stderr, busy.stderr
    running = sh(["docker", "ps", "-aq", "--filter", "name=^mlsafety-hub$"]).stdout.strip()
    assert not running, "a refused start leaves nothing running"


@pytest.fixture(scope="module")
def hub(cpu_image):
    h = Hub(cpu_image)
    h.script("down", check=False)
    h.remove_volumes()
    started = time.perf_counter()
    up = h.script("up")
    record(hub_up_s=time.perf_counter() - started)
    assert f"http://127.0.0.1:{h.port}/hub/" in up.stdout, up.stdout
    yield h
    h.script("down", check=False)
    h.remove_volumes()


@pytest.fixture(scope="module")
def people(hub):
    admin = Person(hub, ADMIN)
    assert "successful" in admin.signup().text, "the admin signs up first"
    admin.login()
    whoami = admin.api("GET", "user")
    assert whoami.status_code == 200 and whoami.json()["admin"] is True, whoami.text
    students = {name: Person(hub, name) for name in STUDENTS}
    for student in students.values():
        assert "sent to the admin" in student.signup().text
        pending = student.login()
        assert "not been authorized" in pending.text, "no access before the facilitator says so"
        reply = admin.session.get(f"{hub.url}/hub/authorize/{student.name}", timeout=30)
        assert reply.status_code == 200, reply.text
        student.login()
        whoami = student.api("GET", "user")
        assert whoami.status_code == 200 and whoami.json()["name"] == student.name, whoami.text
        student.new_token()
    return admin, students


def test_two_students_each_get_their_own_server_and_self_check(hub, people):
    _, students = people
    alice, bob = students["alice"], students["bob"]
    record(spawn_first_s=alice.start())
    bob.start()
    ids = {
        s.name: sh(
            [
                "docker",
                "inspect",
                "-f",
                "{{.Config.Image}} {{.Config.User}}",
                f"mlsafety-student-{s.name}",
            ]
        ).stdout.split()
        for s in (alice, bob)
    }
    assert ids["alice"][0] == hub.env["MLSAFETY_HUB_IMAGE"] and ids["alice"][1] == "1000:1000"
    assert ids["bob"][0] == hub.env["MLSAFETY_HUB_IMAGE"]
    started = time.perf_counter()
    out = alice.run_code(
        "import os, subprocess\n"
        "print(os.getuid(), os.getcwd())\n"
        "r = subprocess.run(['make', 'test-week2', 'IMPL=solution'], capture_output=True, text=True)\n"
        "print(r.stdout[-3000:], r.stderr[-2000:])\n"
    )
    record(first_self_check_s=time.perf_counter() - started)
    assert "1000 /home/student/work" in out, out
    assert re.search(r"\d+/\d+ graded functions pass", out), out
    assert "10/10 graded functions pass" in out, out[-2000:]


def test_work_survives_a_server_restart(hub, people):
    _, students = people
    alice = students["alice"]
    note = {"type": "file", "format": "text", "content": "eps 0.3 breaks it\n"}
    assert alice.server("PUT", "contents/my-notes.txt", json=note).status_code in (200, 201)
    alice.stop()
    gone = sh(["docker", "ps", "-aq", "--filter", "name=^mlsafety-student-alice$"]).stdout.strip()
    assert not gone, "the stopped server's container is removed"
    record(spawn_again_s=alice.start())
    back = alice.server("GET", "contents/my-notes.txt").json()
    assert back["content"] == note["content"], "the student's volume kept the file"


def test_students_cannot_reach_each_other_or_the_admin_api(hub, people):
    _, students = people
    alice, bob = students["alice"], students["bob"]
    assert alice.server("GET", "contents").status_code == 200
    intruder = requests.get(
        f"{hub.url}/user/alice/api/contents",
        headers={"Authorization": f"token {bob.token}"},
        timeout=30,
    )
    assert intruder.status_code in (403, 404), intruder.status_code
    assert bob.api("GET", "users").status_code in (403, 404), "the admin API is the admin's"
    anonymous = requests.get(f"{hub.url}/hub/api/users", timeout=30)
    assert anonymous.status_code in (401, 403)
    page = requests.get(f"{hub.url}/user/alice/lab", timeout=30, allow_redirects=False)
    assert page.status_code in (302, 403), page.status_code
    assert page.headers.get("location", "/hub/").startswith("/hub/"), "sent to the hub to log in"
    followed = requests.get(f"{hub.url}/user/alice/lab", timeout=30)
    assert "/hub/login" in followed.url and "JupyterLab" not in followed.text


def test_a_name_the_spawner_cannot_use_is_refused_and_the_hub_serves_on(hub, people):
    _, students = people
    refused = Person(hub, "Bad Name/1").signup()
    assert "Something went wrong" in refused.text
    assert requests.get(f"{hub.url}/hub/health", timeout=10).status_code == 200
    assert students["bob"].server("GET", "status").status_code == 200


@pytest.mark.skipif(
    not os.environ.get("MLSAFETY_HUB_LOAD"),
    reason="a load test: MLSAFETY_HUB_LOAD=10 make test-container ARGS='-k hub'",
)
def test_many_students_spawn_at_once(hub, people):
    """N students sign up, are authorized and start their servers at the same
    moment; every spawn must succeed (timings in artifacts/hub-timings.json)."""
    from concurrent.futures import ThreadPoolExecutor

    admin, _ = people
    count = int(os.environ["MLSAFETY_HUB_LOAD"])
    crowd = [Person(hub, f"load{i:03d}") for i in range(count)]
    for student in crowd:
        assert "sent to the admin" in student.signup().text
        admin.session.get(f"{hub.url}/hub/authorize/{student.name}", timeout=30)
        student.login()
        student.new_token()

    def spawn(student: Person):
        try:
            return student.start(), None
        except BaseException as err:  # pytest.fail raises a BaseException
            return None, f"{student.name}: {err}"

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=count) as pool:
        results = list(pool.map(spawn, crowd))
    wall = time.perf_counter() - started
    failures = [err for _, err in results if err]
    times = sorted(t for t, _ in results if t is not None)
    record(
        **{
            f"load_{count}_wall_s": wall,
            f"load_{count}_median_spawn_s": times[len(times) // 2] if times else -1,
            f"load_{count}_failed": float(len(failures)),
        }
    )
    assert not failures, failures
    for student in crowd:
        student.stop()


def test_the_hub_and_the_students_servers_stop_cleanly(hub, people):
    started = time.perf_counter()
    hub.script("down", timeout=120)
    record(hub_down_s=time.perf_counter() - started)
    left = sh(["docker", "ps", "-aq", "--filter", "name=^mlsafety-(hub|student-)"]).stdout.split()
    assert not left, f"containers left running: {left}"
    assert (
        subprocess.run(
            ["docker", "volume", "inspect", "mlsafety-hub-user-alice"], capture_output=True
        ).returncode
        == 0
    ), "the students' work stays"
