import sys, subprocess; sys.path.insert(0, __import__('os').path.dirname(__file__)); from engine_api import *
L="import socket;s=socket.socket();s.bind(('',22));s.listen(5)\nwhile True: s.accept()[0].close()"
st,r,_=api('POST','/networks/create',{"Name":"devenv-swarm-shared","Driver":"overlay","Labels":{"devenv-swarm.probe":"1"}}); assert st==201,r
for name,node,nets in [('oa','devenv-swarm-node1',['devenv-swarm-shared']),('ob','devenv-swarm-node1',['devenv-swarm-shared']),('oc','devenv-swarm-node2',['devenv-swarm-shared']),('da','devenv-swarm-node1',None),('db','devenv-swarm-node1',None)]:
    st,r,_=api('POST','/services/create',spec('devenv-swarm-'+name,node,nets,cmd=['python3','-c',L])); assert st==201,r
for n in ['oa','ob','oc','da','db']: running('devenv-swarm-'+n)
time.sleep(2)
def cid(n,node):
    S=f'/run/devenv-swarm/{node}/docker.sock'
    return S, subprocess.run(f"docker -H unix://{S} ps -q --filter label=com.docker.swarm.service.name=devenv-swarm-{n}",shell=True,capture_output=True,text=True).stdout.strip()
def ip(n,node):
    S,c=cid(n,node); return subprocess.run(f"docker -H unix://{S} inspect -f '{{{{range .NetworkSettings.Networks}}}}{{{{.IPAddress}}}} {{{{end}}}}' {c}",shell=True,capture_output=True,text=True).stdout.split()[0]
S,a=cid('oa','devenv-swarm-node1'); Sd,d=cid('da','devenv-swarm-node1')
for label,(Sx,src),tgt in [('overlay same node',(S,a),ip('ob','devenv-swarm-node1')),('overlay other node',(S,a),ip('oc','devenv-swarm-node2')),('default bridge same node',(Sd,d),ip('db','devenv-swarm-node1'))]:
    out=subprocess.run(f"docker -H unix://{Sx} exec {src} timeout 4 python3 -c \"import socket; socket.create_connection(('{tgt}',22),2); print('CONNECTED')\"",shell=True,capture_output=True,text=True)
    print(label, tgt, (out.stdout.strip() or out.stderr.strip().splitlines()[-1]))
