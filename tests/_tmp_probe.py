import json
from conftest import API_KEY, table_counts
from simulator import Fault

def test_probe(sim, loader_env, sleeps, fresh_service, expected, capsys, monkeypatch):
    monkeypatch.setenv("RUNTIME__REQUEST_TIMEOUT", "0.3")
    sim.sim.configure(faults=[Fault(resource="segments", status=500, page=2), Fault(resource="operations", kind="hang", seconds=1, page=1)])
    status, body = fresh_service.handle("POST", b'{"resources": ["segments", "operations", "eventDefs"]}')
    out = capsys.readouterr().out
    with capsys.disabled():
        print(status, json.dumps(body, indent=1))
        print(sleeps)
        print([(r["resource"], r["params"], r["status"], r["seconds"]) for r in sim.sim.requests])
        print(table_counts(loader_env["DESTINATION__DUCKDB__CREDENTIALS"]))
        print(out)
