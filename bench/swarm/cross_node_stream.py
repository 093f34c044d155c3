import sys, socket; sys.path.insert(0, __import__('os').path.dirname(__file__)); from engine_api import *
sink="import socket;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('',22));s.listen(1)\nwhile True:\n c,_=s.accept();n=0\n while True:\n  d=c.recv(1<<20)\n  if not d: break\n  n+=len(d)\n c.sendall(str(n).encode());c.close()"
api('POST','/services/create',spec('devenv-swarm-sink','devenv-swarm-node2',['devenv-ws'],cmd=['python3','-c',sink]))
running('devenv-swarm-sink'); time.sleep(1)
import subprocess
ip=subprocess.run("docker -H unix:///run/devenv-swarm/devenv-swarm-node2/docker.sock inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' $(docker -H unix:///run/devenv-swarm/devenv-swarm-node2/docker.sock ps -q --filter label=com.docker.swarm.service.name=devenv-swarm-sink)",shell=True,capture_output=True,text=True).stdout.strip()
buf=b'\0'*(1<<20)
for _ in range(2):
    s=socket.create_connection((ip,22)); t=time.time()
    for i in range(1024): s.sendall(buf)
    s.shutdown(socket.SHUT_WR); n=int(s.recv(100)); dt=time.time()-t
    print(f'host -> {ip}:22 on node2: {n} bytes in {dt:.2f}s = {n/dt/1e6:.0f} MB/s')
api('DELETE','/services/devenv-swarm-sink')
