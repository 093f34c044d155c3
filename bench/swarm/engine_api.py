# Minimal Engine API client over the test swarm manager's unix socket, for the probes in this folder.
import json, socket, sys, time, http.client, urllib.parse
class U(http.client.HTTPConnection):
    def __init__(s, path): super().__init__('localhost'); s.path=path
    def connect(s): s.sock=socket.socket(socket.AF_UNIX); s.sock.connect(s.path)
M='/run/devenv-swarm/devenv-swarm-node1/docker.sock'
def api(method, path, body=None, sock=M):
    c=U(sock); c.request(method, '/v1.41'+path.replace(' ',''), body=json.dumps(body) if body is not None else None, headers={'Content-Type':'application/json'})
    r=c.getresponse(); d=r.read(); return r.status, (json.loads(d) if d else None), dict(r.getheaders())
def running(name, want=1, timeout=60):
    t=time.time()
    while time.time()-t<timeout:
        st,tasks,_=api('GET','/tasks?filters='+json.dumps({'service':[name],'desired-state':['running']}))
        if sum(1 for x in tasks if x['Status']['State']=='running')>=want: return time.time()
        time.sleep(0.02)
    raise SystemExit('timeout '+name)
def spec(name, node=None, networks=None, replicas=1, cmd=None):
    s={"Name":name,"Labels":{"devenv-swarm.probe":"1"},"TaskTemplate":{"ContainerSpec":{"Image":"devenv-workspace:latest","Command":cmd or ["sleep","infinity"],
       "CapabilityDrop":["ALL"],"CapabilityAdd":["SETUID","SETGID","SYS_CHROOT","CHOWN","KILL","AUDIT_WRITE"]},
       "Resources":{"Limits":{"MemoryBytes":536870912,"Pids":1024}},"RestartPolicy":{"Condition":"any"}},
       "Mode":{"Replicated":{"Replicas":replicas}}}
    if node: s["TaskTemplate"]["Placement"]={"Constraints":["node.hostname=="+node]}
    if networks: s["TaskTemplate"]["Networks"]=[{"Target":n} for n in networks]
    return s
