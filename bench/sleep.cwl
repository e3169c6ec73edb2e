cwlVersion: v1.2
class: CommandLineTool
id: nap
label: nap
doc: Sleeps, so that many jobs are in flight at once (memory measurement).
baseCommand: sleep
inputs:
  seconds:
    type: string
    inputBinding: {position: 1}
outputs: []
