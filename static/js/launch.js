// The launch wizard: step buttons, the boot source's fields (image, volume, image to a new volume),
// flavors too small for the chosen image, the quota this launch takes, the summary card, and one
// submission per click. The server checks all of it again.
(() => {
  const form = document.getElementById("launch-form");
  if (!form) return;
  const checked = (name) => form.querySelector(`input[name="${name}"]:checked`);

  form.querySelectorAll("[data-step-go]").forEach((button) => {
    button.addEventListener("click", () => {
      const tab = document.getElementById(`step-${button.dataset.stepGo}-tab`);
      if (tab && window.bootstrap) window.bootstrap.Tab.getOrCreateInstance(tab).show();
    });
  });

  const source = () => (checked("source") || { value: "image" }).value;

  function showSource() {
    // A section lists the sources it is for; the hidden ones keep their input for a change back.
    form.querySelectorAll("[data-source-for]").forEach((section) => {
      section.hidden = !section.dataset.sourceFor.split(" ").includes(source());
    });
  }

  function markTooSmall() {
    // Booting from a volume, the flavor's root disk is not used: no flavor is too small for it.
    const image = source() === "image" ? checked("image") : null;
    form.querySelectorAll('input[name="flavor"]').forEach((radio) => {
      const row = radio.closest("tr");
      const why = row.querySelector(".too-small-reason");
      const overQuota = row.dataset.overQuota === "true";
      let reason = "";
      if (image) {
        const minDisk = Number(image.dataset.minDisk), minRam = Number(image.dataset.minRam);
        const disk = Number(radio.dataset.disk), ram = Number(radio.dataset.ram);
        if (disk > 0 && minDisk > disk) reason = `Too small for ${image.dataset.name}: it needs ${minDisk} GB of disk.`;
        else if (minRam > ram) reason = `Too small for ${image.dataset.name}: it needs ${minRam} MB of RAM.`;
      }
      why.textContent = reason;
      radio.disabled = overQuota || reason !== "";
      if (radio.disabled) radio.checked = false;
    });
  }

  function showQuota() {
    const flavor = checked("flavor");
    const adding = { instances: 1, cores: flavor ? Number(flavor.dataset.vcpus) : 0, ram: flavor ? Number(flavor.dataset.ram) : 0 };
    document.querySelectorAll("#launch-quota [data-resource]").forEach((box) => {
      const limit = Number(box.dataset.limit), add = flavor ? adding[box.dataset.resource] || 0 : 0;
      const bar = box.querySelector(".quota-this-launch");
      const pct = limit > 0 ? Math.min(100, Math.round((100 * add) / limit)) : 0;
      bar.style.width = `${pct}%`;
      bar.setAttribute("aria-valuenow", String(pct));
      box.querySelector(".quota-adding").textContent = add ? ` (+${add})` : "";
    });
  }

  function summarise() {
    const set = (key, value) => { const el = form.querySelector(`[data-summary="${key}"]`); if (el) el.textContent = value || "—"; };
    set("name", form.elements.name.value.trim());
    const image = checked("image"), flavor = checked("flavor"), volume = checked("boot_volume");
    const size = form.elements.volume_size.value.trim();
    const boots = {
      image: image && `image ${image.dataset.name}`,
      volume: volume && `volume ${volume.dataset.name}`,
      image_to_volume: image && `a new ${size ? `${size} GiB ` : ""}volume from ${image.dataset.name}`,
    }[source()];
    set("source", boots);
    set("flavor", flavor && `${flavor.dataset.name} (${flavor.dataset.vcpus} vCPU, ${flavor.dataset.ram} MB)`);
    const key = form.elements.key_name;
    set("key_name", key.value ? key.value : "none");
  }

  function update() { showSource(); markTooSmall(); showQuota(); summarise(); }
  form.addEventListener("change", update);
  form.addEventListener("input", summarise);
  form.addEventListener("submit", () => {
    const button = document.getElementById("launch-submit");
    // Disabled after the submission has started, so the click still sends the form once.
    setTimeout(() => { button.disabled = true; }, 0);
  });
  update();
})();
