import sys; sys.path.insert(0, __import__('os').path.dirname(__file__)); from engine_api import *
st,ss,_=api('GET','/services?filters='+json.dumps({'label':['devenv-swarm.probe']}))
for s in ss: api('DELETE','/services/'+s['ID'])
time.sleep(3)
for i in range(60):
    st,ts,_=api('GET','/tasks?filters='+json.dumps({'desired-state':['running']}))
    if not ts: break
    time.sleep(1)
st,ns,_=api('GET','/networks?filters='+json.dumps({'label':['devenv-swarm.probe']}))
for n in ns: api('DELETE','/networks/'+n['Id'])
print('cleaned', len(ss), 'services', len(ns), 'networks')
