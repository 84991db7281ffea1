-- Argo CD health of a flowops.io Workflow (argocd-cm: resource.customizations.health.flowops.io_Workflow).
-- Reads what kstatus reads: observedGeneration and the Ready/Stalled conditions, plus the
-- color (status.actualStatus): GREEN and Ready -> Healthy; RED or Stalled -> Degraded;
-- anything else (no status yet, an unobserved generation, ORANGE, YELLOW) -> Progressing.
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
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report a status"
  return hs
end

local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local color = status.actualStatus or "unknown"
local ready = condition(status, "Ready")
local stalled = condition(status, "Stalled")
local message = color
if ready ~= nil and ready.message ~= nil and ready.message ~= "" then
  message = color .. ": " .. ready.message
end

if (stalled ~= nil and stalled.status == "True") or color == "RED" then
  hs.status = "Degraded"
  if stalled ~= nil and stalled.message ~= nil and stalled.message ~= "" then
    message = color .. ": " .. stalled.message
  end
elseif color == "GREEN" and ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
else
  hs.status = "Progressing"
end
hs.message = message
return hs
