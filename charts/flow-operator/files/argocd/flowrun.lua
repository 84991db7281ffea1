-- Argo CD health of a flowops.io FlowRun (argocd-cm: resource.customizations.health.flowops.io_FlowRun).
-- By status.phase: Submitted, Queued, Deployed -> Progressing; Completed -> Healthy;
-- Failed, Crashed, Cancelled -> Degraded (a cancelled run did not do its work). A Stalled condition is Degraded whatever the phase; no
-- status or an unobserved generation is Progressing.
local hs = {}
local function condition(status, kind)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to accept the run"
  return hs
end

local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local phase = status.phase
local message = phase
if status.message ~= nil and status.message ~= "" then
  message = phase .. ": " .. status.message
end
local stalled = condition(status, "Stalled")

if phase == "Failed" or phase == "Crashed" or phase == "Cancelled" or (stalled ~= nil and stalled.status == "True") then
  hs.status = "Degraded"
  if stalled ~= nil and stalled.message ~= nil and stalled.message ~= "" and status.message == nil then
    message = phase .. ": " .. stalled.message
  end
elseif phase == "Completed" then
  hs.status = "Healthy"
else
  hs.status = "Progressing"
end
hs.message = message
return hs
