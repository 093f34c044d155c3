import sys, subprocess, statistics; sys.path.insert(0, __import__('os').path.dirname(__file__)); from engine_api import *
N=int(sys.argv[2]); mode=sys.argv[1]
def used():
    m=dict(l.split(':') for l in open('/proc/meminfo').read().splitlines())
    kb=lambda k:int(m[k].split()[0])
    return (kb('MemTotal')-kb('MemAvailable'))/1024
def rss():
    out=[]
    for n in (1,2,3):
        o=subprocess.run(['docker','exec',f'devenv-swarm-node{n}','sh','-c','ps -o rss= -C dockerd,containerd'],capture_output=True,text=True).stdout.split()
        out.append(sum(int(x) for x in o)//1024)
    return out
u0=used(); r0=rss(); t0=time.time(); nets=[]
for i in range(N):
    n=f'devenv-swarm-p{i}'
    if mode=='overlay' or mode=='encrypted':
        body={"Name":n+"-net","Driver":"overlay","Labels":{"devenv-swarm.probe":"1"}}
        if mode=='encrypted': body["Options"]={"encrypted":""}
        st,r,_=api('POST','/networks/create',body); assert st==201,r; nets=[n+"-net"]
    else: nets=['devenv-ws']
    st,r,_=api('POST','/services/create',spec(n,f'devenv-swarm-node{i%3+1}',nets)); assert st==201,r
for i in range(N): running(f'devenv-swarm-p{i}', timeout=300)
t1=time.time(); time.sleep(5)
print(f'{mode} N={N}: all running after {t1-t0:.1f}s ({(t1-t0)/N*1000:.0f} ms each); host memory +{used()-u0:.0f} MiB ({(used()-u0)/N:.1f} MiB each); dockerd+containerd RSS per node {r0} -> {rss()} MiB')
ns=subprocess.run(['docker','exec','devenv-swarm-node2','sh','-c','ls /var/run/docker/netns | wc -l; ip -o link | wc -l'],capture_output=True,text=True).stdout.split()
print(f'node2: {ns[0]} network namespaces, {ns[1]} links')
