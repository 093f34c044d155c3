import sys; sys.path.insert(0, __import__('os').path.dirname(__file__)); from engine_api import *
import statistics
creates=[];ups=[];downs=[]
for i in range(6):
    n=f'devenv-swarm-m{i}'; node=f'devenv-swarm-node{i%3+1}'
    t=time.time(); st,r,_=api('POST','/services/create',spec(n,node,['devenv-ws'])); assert st==201,r
    creates.append(running(n)-t)
for i in range(6):
    n=f'devenv-swarm-m{i}'
    st,s,_=api('GET','/services/'+n); sp=s['Spec']; sp['Mode']['Replicated']['Replicas']=0
    t=time.time(); st,r,_=api('POST',f'/services/{n}/update?version={s["Version"]["Index"]}',sp); assert st==200,r
    while True:
        st,tasks,_=api('GET','/tasks?filters='+json.dumps({'service':[n]}))
        if all(x['Status']['State'] not in ('running','starting','assigned','accepted','preparing','ready','pending','new') for x in tasks): break
        time.sleep(0.02)
    downs.append(time.time()-t)
    st,s,_=api('GET','/services/'+n); sp=s['Spec']; sp['Mode']['Replicated']['Replicas']=1
    t=time.time(); st,r,_=api('POST',f'/services/{n}/update?version={s["Version"]["Index"]}',sp); assert st==200,r
    ups.append(running(n)-t)
for i in range(6): api('DELETE','/services/devenv-swarm-m%d'%i)
f=lambda a: f"median {statistics.median(a):.2f}s min {min(a):.2f} max {max(a):.2f}"
print('create->running', f(creates)); print('scale 1->0 (task gone)', f(downs)); print('scale 0->1 running', f(ups))
